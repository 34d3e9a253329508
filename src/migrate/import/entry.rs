//! What one LDIF entry becomes: a planned user or group, its attributes
//! mapped onto the store's fields and checked against the store's naming
//! rules, with a [`Problem`] for everything dropped or changed.

use super::{problem, ImportOptions, PlannedGroup, PlannedUser, Problem, Severity};
use crate::account::password;
use crate::auth::legacy::{self, StoredPassword};
use crate::directory::dn::Dn;
use crate::directory::schema;
use crate::ldif::LdifEntry;
use crate::store::{Store, StoreError, Timestamp};
use std::collections::{BTreeMap, HashSet};

// --- attribute classes ---

pub(super) const USER_CLASSES: &[&str] = &[
    "inetorgperson",
    "posixaccount",
    "person",
    "organizationalperson",
];
pub(super) const GROUP_CLASSES: &[&str] = &["groupofnames", "groupofuniquenames", "posixgroup"];

/// Attributes an import reads on purpose or that the server computes
/// (OpenLDAP operational attributes included): never reported as unknown.
const IGNORED: &[&str] = &[
    "objectclass",
    "structuralobjectclass",
    "entryuuid",
    "entrycsn",
    "creatorsname",
    "modifiersname",
    "createtimestamp",
    "modifytimestamp",
    "hassubordinates",
    "subschemasubentry",
    "entrydn",
    "memberof",
    "pwdchangedtime",
    "pwdaccountlockedtime",
    "pwdfailuretime",
    "pwdhistory",
    "pwdgraceusetime",
    "pwdpolicysubentry",
    "contextcsn",
    "ak-active",
    "ak-superuser",
    "uid",
    "cn",
    "userpassword",
    "uidnumber",
    "gidnumber",
    "displayname",
    "mail",
    "member",
    "uniquemember",
    "memberuid",
    "description",
];

pub(super) fn object_classes(e: &LdifEntry) -> Vec<String> {
    e.values("objectClass")
        .map(|a| {
            String::from_utf8_lossy(&a.value)
                .trim()
                .to_ascii_lowercase()
        })
        .collect()
}

/// Text values of `name` (plain, UTF-8, non-blank); reports the others.
fn texts(e: &LdifEntry, name: &str, problems: &mut Vec<Problem>) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for a in e.values(name) {
        match std::str::from_utf8(&a.value) {
            Ok(s) if !s.trim().is_empty() => out.push((s.trim().to_string(), a.line)),
            Ok(_) => {}
            Err(_) => problem(
                problems,
                a.line,
                &e.dn,
                Severity::Warning,
                format!("{name} is not UTF-8 text; value ignored"),
            ),
        }
    }
    out
}

/// The first value of a single-valued attribute; reports extra values.
fn single(e: &LdifEntry, name: &str, problems: &mut Vec<Problem>) -> Option<(String, usize)> {
    let mut values = texts(e, name, problems).into_iter();
    let first = values.next()?;
    if let Some((_, line)) = values.next() {
        problem(
            problems,
            line,
            &e.dn,
            Severity::Warning,
            format!(
                "{name} has several values; only the first ({:?}) is kept",
                first.0
            ),
        );
    }
    Some(first)
}

fn number(e: &LdifEntry, name: &str, problems: &mut Vec<Problem>) -> Option<u32> {
    let (text, line) = single(e, name, problems)?;
    match text.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            problem(
                problems,
                line,
                &e.dn,
                Severity::Warning,
                format!(
                    "{name} {text:?} is not a number from 0 to 4294967295; a new one is allocated"
                ),
            );
            None
        }
    }
}

/// GeneralizedTime `YYYYMMDDHHMMSS[.f]Z` → seconds since the epoch.
fn generalized_time(text: &str) -> Option<Timestamp> {
    let digits = text.get(..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !text.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<u32>().ok());
    let year = i32::try_from(n(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(n(6..8)?).ok()?).ok()?;
    let t = time::Time::from_hms(
        u8::try_from(n(8..10)?).ok()?,
        u8::try_from(n(10..12)?).ok()?,
        u8::try_from(n(12..14)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// The entry's user or group name (`found`, with its line) if the store's
/// naming rule (`check`) accepts it; else reports why the entry is
/// skipped.
fn checked_name(
    e: &LdifEntry,
    found: Option<(String, usize)>,
    missing: &str,
    check: fn(&str) -> Result<(), StoreError>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let Some((name, line)) = found else {
        problem(problems, e.line, &e.dn, Severity::Error, missing.into());
        return None;
    };
    if let Err(err) = check(&name) {
        problem(
            problems,
            line,
            &e.dn,
            Severity::Error,
            format!("{err}; entry skipped"),
        );
        return None;
    }
    Some(name)
}

pub(super) fn plan_user(
    e: &LdifEntry,
    opts: &ImportOptions,
    problems: &mut Vec<Problem>,
) -> Option<PlannedUser> {
    let uid = single(e, "uid", problems);
    let cns = texts(e, "cn", problems);
    let username = checked_name(
        e,
        uid.clone().or_else(|| cns.first().cloned()),
        "user entry has neither uid nor cn; skipped",
        Store::check_user_name,
        problems,
    )?;
    let mut user = PlannedUser {
        line: e.line,
        source_dn: e.dn.clone(),
        username: username.clone(),
        full_name: None,
        email: None,
        uid_number: number(e, "uidNumber", problems),
        gid_number: number(e, "gidNumber", problems),
        disabled: false,
        created: None,
        attrs: BTreeMap::new(),
        password: None,
    };
    // displayName, else a cn that is not just the username.
    let full = single(e, "displayName", problems).or_else(|| {
        cns.iter()
            .find(|(c, _)| !c.eq_ignore_ascii_case(&username))
            .cloned()
    });
    if let Some((name, line)) = full {
        match Store::check_full_name(&name) {
            Ok(()) => user.full_name = Some(name),
            Err(err) => problem(
                problems,
                line,
                &e.dn,
                Severity::Warning,
                format!("{err}; dropped"),
            ),
        }
    }
    if let Some((mail, line)) = single(e, "mail", problems) {
        match Store::check_email(&mail) {
            Ok(()) => user.email = Some(mail),
            Err(err) => problem(
                problems,
                line,
                &e.dn,
                Severity::Warning,
                format!("{err}; dropped"),
            ),
        }
    }
    if let Some((desc, _)) = single(e, "description", problems) {
        user.attrs.insert("description".into(), desc);
    }
    if let Some((t, _)) = single(e, "createTimestamp", problems) {
        user.created = generalized_time(&t);
    }
    let locked = e.values("pwdAccountLockedTime").next().is_some()
        || e.first_text("ak-active")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("FALSE"));
    user.disabled = locked;

    user.password = user_password(e, problems);

    // Everything else: settable attributes, kept unknowns, reports.
    other_attributes(e, opts, &mut user.attrs, problems);
    Some(user)
}

/// The entry's first `userPassword`, if it parses; reports one that does
/// not and any further values.
fn user_password(e: &LdifEntry, problems: &mut Vec<Problem>) -> Option<StoredPassword> {
    let mut password = None;
    let mut passwords = e.values("userPassword");
    if let Some(pw) = passwords.next() {
        match legacy::parse_user_password(&pw.value) {
            // A password in clear keeps the bounds of every password
            // (account::password::check_new); the strength policy is for
            // new passwords, not for the users a migration brings along.
            Ok(StoredPassword::Cleartext(secret)) => match password::check_new(&secret.0) {
                Ok(()) => password = Some(StoredPassword::Cleartext(secret)),
                Err(refusal) => problem(
                    problems,
                    pw.line,
                    &e.dn,
                    Severity::Warning,
                    format!("userPassword: {refusal}; the user is imported without a password"),
                ),
            },
            Ok(p) => password = Some(p),
            Err(err) => problem(
                problems,
                pw.line,
                &e.dn,
                Severity::Warning,
                format!("userPassword: {err}; the user is imported without a password"),
            ),
        }
        if let Some(extra) = passwords.next() {
            problem(
                problems,
                extra.line,
                &e.dn,
                Severity::Warning,
                "userPassword has several values; only the first is kept".into(),
            );
        }
    }
    password
}

/// The entry's attributes not mapped onto fields, into `attrs`: settable
/// ones under the schema's name, those in `keep_attributes`; reports the
/// others, values with options and values past the first.
fn other_attributes(
    e: &LdifEntry,
    opts: &ImportOptions,
    attrs: &mut BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) {
    let mut reported: HashSet<String> = HashSet::new();
    for a in &e.attrs {
        let lower = a.name.to_ascii_lowercase();
        let ignored = IGNORED.contains(&lower.as_str());
        if ignored || !a.is_plain() {
            if !a.is_plain() && reported.insert(format!("{lower};")) {
                problem(
                    problems,
                    a.line,
                    &e.dn,
                    Severity::Warning,
                    format!(
                        "{};{} values are ignored (only values without language tags are imported)",
                        a.name,
                        a.options.join(";")
                    ),
                );
            }
            continue;
        }
        let settable = schema::user_settable(&a.name);
        let keep = opts
            .keep_attributes
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&a.name));
        let key = match (settable, keep) {
            (Some(at), _) => at.name.to_string(),
            // The schema's spelling when it knows the attribute (so the
            // entry serves it), else the configured one.
            (None, Some(k)) => schema::attribute(k)
                .filter(|at| !at.operational)
                .map_or_else(|| k.clone(), |at| at.name.to_string()),
            (None, None) => {
                if reported.insert(lower) {
                    problem(
                        problems,
                        a.line,
                        &e.dn,
                        Severity::Warning,
                        format!(
                            "unknown attribute {} ignored (list it in keep_attributes to keep it)",
                            a.name
                        ),
                    );
                }
                continue;
            }
        };
        let Ok(value) = std::str::from_utf8(&a.value) else {
            problem(
                problems,
                a.line,
                &e.dn,
                Severity::Warning,
                format!("{} is not UTF-8 text; value ignored", a.name),
            );
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        if let Err(invalid) = crate::domain::validate::attribute(&key, value) {
            problem(
                problems,
                a.line,
                &e.dn,
                Severity::Warning,
                format!("{invalid}; value ignored"),
            );
            continue;
        }
        if attrs.contains_key(&key) {
            if reported.insert(format!("{lower}#multi")) {
                problem(
                    problems,
                    a.line,
                    &e.dn,
                    Severity::Warning,
                    format!("{} has several values; only the first is kept", a.name),
                );
            }
            continue;
        }
        attrs.insert(key, value.to_string());
    }
}

/// The DN of a `uniqueMember` value without its optional `#'…'B` UID.
fn strip_unique_uid(value: &str) -> &str {
    match value.rfind("#'") {
        Some(i) if value.ends_with("'B") => &value[..i],
        _ => value,
    }
}

/// A member reference before resolution.
pub(super) enum RawMember {
    Dn(String, usize),
    Uid(String, usize),
}

pub(super) fn plan_group(
    e: &LdifEntry,
    problems: &mut Vec<Problem>,
) -> Option<(PlannedGroup, Vec<RawMember>)> {
    let rdn_value = Dn::parse(&e.dn).ok().and_then(|d| {
        d.rdn()
            .and_then(|r| r.avas.first())
            .map(|a| a.value.to_string())
    });
    let name = checked_name(
        e,
        single(e, "cn", problems).or(rdn_value.map(|v| (v, e.line))),
        "group entry has no cn; skipped",
        Store::check_group_name,
        problems,
    )?;
    let mut g = PlannedGroup {
        line: e.line,
        source_dn: e.dn.clone(),
        name,
        gid_number: number(e, "gidNumber", problems),
        description: None,
        members: Vec::new(),
    };
    if let Some((d, line)) = single(e, "description", problems) {
        match Store::check_description(&d) {
            Ok(()) => g.description = Some(d),
            Err(err) => problem(
                problems,
                line,
                &e.dn,
                Severity::Warning,
                format!("{err}; dropped"),
            ),
        }
    }
    let mut raw = Vec::new();
    for (v, line) in texts(e, "member", problems) {
        raw.push(RawMember::Dn(v, line));
    }
    for (v, line) in texts(e, "uniqueMember", problems) {
        raw.push(RawMember::Dn(strip_unique_uid(&v).to_string(), line));
    }
    for (v, line) in texts(e, "memberUid", problems) {
        raw.push(RawMember::Uid(v, line));
    }
    let mut reported = HashSet::new();
    for a in &e.attrs {
        let lower = a.name.to_ascii_lowercase();
        if IGNORED.contains(&lower.as_str()) || lower == "businesscategory" || lower == "owner" {
            continue;
        }
        if reported.insert(lower) {
            problem(
                problems,
                a.line,
                &e.dn,
                Severity::Warning,
                format!("attribute {} of a group is not imported (groups keep cn, gidNumber, description and members)", a.name),
            );
        }
    }
    Some((g, raw))
}
