//! LDIF import: a pure planner, then one all-or-nothing store batch.
//!
//! [`plan`] classifies entries (users, groups, skipped), maps attributes
//! onto store records, resolves member references whatever the source
//! tree's DNs were, and collects every problem with the line it comes
//! from. It reads nothing but its input, so `--dry-run` is just
//! [`ImportPlan::report`]. [`apply`] hashes cleartext passwords, then hands
//! the whole plan to [`Store::apply_batch`], which writes it in one sled
//! transaction: either everything lands or nothing does, and a second run
//! of the same file finds everything in place and changes nothing.
//!
//! [`json`] restores a backup written by [`super::export::json`].

use crate::auth::keys::ServerKey;
use crate::auth::legacy::{self, StoredPassword};
use crate::auth::password::{Hasher, PasswordError};
use crate::auth::totp;
use crate::directory::dn::Dn;
use crate::directory::schema;
use crate::ldif::{self, Ldif, LdifEntry, LdifError};
use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchReport, BatchUser};
use crate::store::mfa::{RawAppPassword, RawDevice, RawSecondFactors};
use crate::store::{
    now, AppPassword, AppPasswordId, Device, DeviceId, DeviceKind, Group, GroupId, KeyedHash,
    Store, StoreError, Timestamp, TotpSecret, User, UserId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, Read};
use uuid::Uuid;

/// How often progress is reported (entries or users).
pub const PROGRESS_EVERY: usize = 1000;
/// Largest JSON backup accepted (bytes).
pub const MAX_JSON_BACKUP: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading LDIF: {0}")]
    Ldif(#[from] LdifError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("hashing a cleartext password: {0}")]
    Hash(#[from] PasswordError),
    #[error("reading the JSON backup: {0}")]
    Json(String),
}

/// Settings of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Attributes the server does not map (e.g. `employeeType`,
    /// `sshPublicKey`) to keep anyway in `user.attrs` (case-insensitive).
    /// Others are reported and dropped.
    pub keep_attributes: Vec<String>,
}

/// The names of `keep_attributes` that entries do not serve: the schema
/// does not know them (they are still stored and exported).
pub fn unserved_kept_attributes(opts: &ImportOptions) -> Vec<&str> {
    opts.keep_attributes
        .iter()
        .filter(|k| schema::attribute(k).is_none_or(|at| at.operational))
        .map(String::as_str)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something in the source is not imported (an entry, a member).
    Error,
    /// Imported with a change (a value dropped, an attribute ignored).
    Warning,
}

/// One problem found while planning, with the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub dn: String,
    pub severity: Severity,
    pub message: String,
}

/// A user the import will create or update.
#[derive(Clone, Debug)]
pub struct PlannedUser {
    pub line: usize,
    pub source_dn: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// Kept from the source; `None` = allocate.
    pub uid_number: Option<u32>,
    /// Kept from the source; `None` = the uidNumber (private group).
    pub gid_number: Option<u32>,
    pub disabled: bool,
    /// From `createTimestamp`, when the source has it.
    pub created: Option<Timestamp>,
    /// `user.attrs`: canonical names of settable attributes, plus kept
    /// unknown ones.
    pub attrs: BTreeMap<String, String>,
    pub password: Option<StoredPassword>,
}

/// A group the import will create or update.
#[derive(Clone, Debug)]
pub struct PlannedGroup {
    pub line: usize,
    pub source_dn: String,
    pub name: String,
    pub gid_number: Option<u32>,
    pub description: Option<String>,
    /// Resolved members, by name.
    pub members: Vec<BatchMember>,
}

/// An entry that is neither user nor group (base, OUs, …) or a change
/// record that is not an add.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedEntry {
    pub line: usize,
    pub dn: String,
    pub reason: String,
}

/// What an import would do; `Display`ed by `--dry-run`.
#[derive(Clone, Debug, Default)]
pub struct ImportPlan {
    pub users: Vec<PlannedUser>,
    pub groups: Vec<PlannedGroup>,
    pub skipped: Vec<SkippedEntry>,
    pub problems: Vec<Problem>,
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    #[serde(flatten)]
    pub batch: BatchReport,
    /// Problems of the plan (already shown by the dry run).
    pub problems: usize,
    pub skipped: usize,
}

/// Progress of a long import, for the CLI to print on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `reading`, `hashing` or `writing`.
    pub stage: &'static str,
    pub done: usize,
    /// `None` while reading (the total is not known yet).
    pub total: Option<usize>,
}

// --- attribute classes ---

const USER_CLASSES: &[&str] = &[
    "inetorgperson",
    "posixaccount",
    "person",
    "organizationalperson",
];
const GROUP_CLASSES: &[&str] = &["groupofnames", "groupofuniquenames", "posixgroup"];

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

fn problem(
    problems: &mut Vec<Problem>,
    line: usize,
    dn: &str,
    severity: Severity,
    message: String,
) {
    problems.push(Problem {
        line,
        dn: dn.to_string(),
        severity,
        message,
    });
}

fn object_classes(e: &LdifEntry) -> Vec<String> {
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

fn plan_user(
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

    let mut passwords = e.values("userPassword");
    if let Some(pw) = passwords.next() {
        match legacy::parse_user_password(&pw.value) {
            Ok(p) => user.password = Some(p),
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

    // Everything else: settable attributes, kept unknowns, reports.
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
        if user.attrs.contains_key(&key) {
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
        user.attrs.insert(key, value.to_string());
    }
    Some(user)
}

/// The DN of a `uniqueMember` value without its optional `#'…'B` UID.
fn strip_unique_uid(value: &str) -> &str {
    match value.rfind("#'") {
        Some(i) if value.ends_with("'B") => &value[..i],
        _ => value,
    }
}

/// A member reference before resolution.
enum RawMember {
    Dn(String, usize),
    Uid(String, usize),
}

fn plan_group(
    e: &LdifEntry,
    problems: &mut Vec<Problem>,
) -> Option<(PlannedGroup, Vec<RawMember>)> {
    let rdn_value = Dn::parse(&e.dn).ok().and_then(|d| {
        d.rdn()
            .and_then(|r| r.avas.first())
            .map(|a| a.value.clone())
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

/// What the two kinds of planned entries call their name and number, for
/// the problems [`Admitted::admit`] reports.
struct Kind {
    name: &'static str,
    number: &'static str,
    owner: &'static str,
}

const USER_KIND: Kind = Kind {
    name: "username",
    number: "uidNumber",
    owner: "",
};
const GROUP_KIND: Kind = Kind {
    name: "group name",
    number: "gidNumber",
    owner: "group ",
};

/// The planned entries of one kind (users or groups) by name, number and
/// DN: finds duplicates while planning, then resolves member references.
#[derive(Default)]
struct Admitted {
    /// Lowercase name → (index in the plan, line of the entry).
    names: HashMap<String, (usize, usize)>,
    /// uidNumber or gidNumber → name of its holder.
    numbers: HashMap<u32, String>,
    /// Normalised DN → index in the plan.
    dns: HashMap<String, usize>,
}

impl Admitted {
    fn index(&self, name: &str) -> Option<usize> {
        self.names.get(&name.to_ascii_lowercase()).map(|&(i, _)| i)
    }

    /// Admits entry `e`, planned as `name` with `number`, at plan index
    /// `next`. A name seen before refuses it (an error); a number seen
    /// before is dropped so a new one is allocated (a warning).
    fn admit(
        &mut self,
        kind: &Kind,
        e: &LdifEntry,
        name: &str,
        number: &mut Option<u32>,
        next: usize,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let key = name.to_ascii_lowercase();
        if let Some(&(_, first)) = self.names.get(&key) {
            problem(
                problems,
                e.line,
                &e.dn,
                Severity::Error,
                format!(
                    "duplicate {} {name} (first at line {first}); entry skipped",
                    kind.name
                ),
            );
            return false;
        }
        if let Some(n) = *number {
            if let Some(owner) = self.numbers.get(&n) {
                problem(
                    problems,
                    e.line,
                    &e.dn,
                    Severity::Warning,
                    format!(
                        "{} {n} is also {}{owner}'s; a new one is allocated",
                        kind.number, kind.owner
                    ),
                );
                *number = None;
            } else {
                self.numbers.insert(n, name.to_string());
            }
        }
        self.names.insert(key, (next, e.line));
        if let Ok(dn) = Dn::parse(&e.dn) {
            self.dns.insert(dn.normalized(), next);
        }
        true
    }
}

/// Plans an import of the entries of an LDIF file. Pure: reads nothing
/// but its arguments.
pub fn plan(entries: &[LdifEntry], opts: &ImportOptions) -> ImportPlan {
    let mut p = ImportPlan::default();
    let mut raw_members: Vec<Vec<RawMember>> = Vec::new();
    let mut users = Admitted::default();
    let mut groups = Admitted::default();
    let mut emails: HashMap<String, String> = HashMap::new();

    for e in entries {
        let classes = object_classes(e);
        let is_user = classes.iter().any(|c| USER_CLASSES.contains(&c.as_str()));
        let is_group = classes.iter().any(|c| GROUP_CLASSES.contains(&c.as_str()));
        if Dn::parse(&e.dn).is_err() {
            problem(
                &mut p.problems,
                e.line,
                &e.dn,
                Severity::Error,
                "the DN is not a valid RFC 4514 DN; entry skipped".into(),
            );
            continue;
        }
        if is_user {
            if is_group {
                problem(
                    &mut p.problems,
                    e.line,
                    &e.dn,
                    Severity::Warning,
                    "entry has both user and group object classes; imported as a user".into(),
                );
            }
            let Some(mut u) = plan_user(e, opts, &mut p.problems) else {
                continue;
            };
            let name = u.username.clone();
            if !users.admit(
                &USER_KIND,
                e,
                &name,
                &mut u.uid_number,
                p.users.len(),
                &mut p.problems,
            ) {
                continue;
            }
            if let Some(mail) = &u.email {
                let k = mail.to_lowercase();
                if let Some(owner) = emails.get(&k) {
                    problem(
                        &mut p.problems,
                        e.line,
                        &e.dn,
                        Severity::Warning,
                        format!("mail {mail} is also {owner}'s; dropped"),
                    );
                    u.email = None;
                } else {
                    emails.insert(k, u.username.clone());
                }
            }
            p.users.push(u);
        } else if is_group {
            let Some((mut g, raw)) = plan_group(e, &mut p.problems) else {
                continue;
            };
            let name = g.name.clone();
            if !groups.admit(
                &GROUP_KIND,
                e,
                &name,
                &mut g.gid_number,
                p.groups.len(),
                &mut p.problems,
            ) {
                continue;
            }
            p.groups.push(g);
            raw_members.push(raw);
        } else {
            let shown = if classes.is_empty() {
                "no objectClass".to_string()
            } else {
                format!("objectClass {}", classes.join(", "))
            };
            p.skipped.push(SkippedEntry {
                line: e.line,
                dn: e.dn.clone(),
                reason: format!("not a user or group ({shown})"),
            });
        }
    }

    // Resolve members: full DN first, then the first RDN's value as a
    // username or group name (the source tree's layout does not matter).
    for (gi, raw) in raw_members.into_iter().enumerate() {
        let (group_dn, group_name) = (p.groups[gi].source_dn.clone(), p.groups[gi].name.clone());
        let mut seen = BTreeSet::new();
        let mut members = Vec::new();
        for r in raw {
            let user = |i: usize| BatchMember::User(p.users[i].username.clone());
            let group = |i: usize| BatchMember::Group(p.groups[i].name.clone());
            let resolved = match &r {
                RawMember::Uid(uid, _) => users.index(uid).map(user),
                RawMember::Dn(dn, _) => match Dn::parse(dn) {
                    Err(_) => None,
                    Ok(parsed) => {
                        let n = parsed.normalized();
                        if let Some(&i) = users.dns.get(&n) {
                            Some(user(i))
                        } else if let Some(&i) = groups.dns.get(&n) {
                            Some(group(i))
                        } else {
                            // The first RDN's value as a name; `uid=` means
                            // a user when both kinds have that name.
                            parsed.rdn().and_then(|r| r.avas.first()).and_then(|a| {
                                match (users.index(&a.value), groups.index(&a.value)) {
                                    (Some(i), None) => Some(user(i)),
                                    (None, Some(i)) => Some(group(i)),
                                    (Some(i), Some(_)) if a.attr.eq_ignore_ascii_case("uid") => {
                                        Some(user(i))
                                    }
                                    (Some(_), Some(i)) => Some(group(i)),
                                    (None, None) => None,
                                }
                            })
                        }
                    }
                },
            };
            let (shown, line, kind) = match &r {
                RawMember::Dn(d, l) => (d.clone(), *l, "member"),
                RawMember::Uid(u, l) => (u.clone(), *l, "memberUid"),
            };
            match resolved {
                Some(BatchMember::Group(ref g)) if g.eq_ignore_ascii_case(&group_name) => {
                    problem(
                        &mut p.problems,
                        line,
                        &group_dn,
                        Severity::Error,
                        format!("{kind} {shown:?} is the group itself; dropped"),
                    );
                }
                Some(m) => {
                    if seen.insert(m.clone()) {
                        members.push(m);
                    }
                }
                None => problem(
                    &mut p.problems,
                    line,
                    &group_dn,
                    Severity::Error,
                    format!("{kind} {shown:?} matches no imported user or group; dropped"),
                ),
            }
        }
        p.groups[gi].members = members;
    }
    drop_cycles(&mut p);
    p
}

/// Drops member edges between imported groups that close a cycle,
/// reporting each.
fn drop_cycles(p: &mut ImportPlan) {
    let index: HashMap<String, usize> = p
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.to_ascii_lowercase(), i))
        .collect();
    // state: 0 unvisited, 1 on the path, 2 done.
    let mut state = vec![0u8; p.groups.len()];
    for start in 0..p.groups.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (g, ref mut next)) = stack.last_mut() {
            let members = &p.groups[g].members;
            if *next >= members.len() {
                state[g] = 2;
                stack.pop();
                continue;
            }
            let m = *next;
            *next += 1;
            let BatchMember::Group(child) = &members[m] else {
                continue;
            };
            let Some(&c) = index.get(&child.to_ascii_lowercase()) else {
                continue;
            };
            match state[c] {
                1 => {
                    let child = child.clone();
                    let (line, dn) = (p.groups[g].line, p.groups[g].source_dn.clone());
                    p.groups[g].members.remove(m);
                    if let Some(top) = stack.last_mut() {
                        top.1 -= 1;
                    }
                    problem(
                        &mut p.problems,
                        line,
                        &dn,
                        Severity::Error,
                        format!(
                            "member group {child} would close a cycle of nested groups; dropped"
                        ),
                    );
                }
                0 => {
                    state[c] = 1;
                    stack.push((c, 0));
                }
                _ => {}
            }
        }
    }
}

/// [`plan`] for a whole file, with its skipped change records reported.
pub fn plan_ldif(ldif: &Ldif, opts: &ImportOptions) -> ImportPlan {
    let mut p = plan(&ldif.entries, opts);
    for s in &ldif.skipped {
        p.problems.push(Problem {
            line: s.line,
            dn: s.dn.clone(),
            severity: Severity::Error,
            message: format!(
                "change record of type {} is not imported (only content and changetype: add are)",
                s.changetype
            ),
        });
    }
    p.problems.sort_by_key(|pr| pr.line);
    p
}

/// Reads an LDIF stream and plans its import, reporting progress every
/// [`PROGRESS_EVERY`] entries.
pub fn read_and_plan(
    input: impl BufRead,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportPlan, ImportError> {
    let ldif = ldif::read_with_progress(input, &mut |n| {
        if n % PROGRESS_EVERY == 0 {
            progress(Progress {
                stage: "reading",
                done: n,
                total: None,
            });
        }
    })?;
    Ok(plan_ldif(&ldif, opts))
}

impl ImportPlan {
    /// True when some source data will not be imported.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The printable dry-run report: what would be created and every
    /// problem with its line number. No secrets: passwords show their
    /// scheme only.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "import plan: {} users, {} groups, {} entries skipped, {} problems",
            self.users.len(),
            self.groups.len(),
            self.skipped.len(),
            self.problems.len()
        );
        if !self.users.is_empty() {
            let _ = writeln!(s, "\nusers:");
        }
        for u in &self.users {
            let num = |n: Option<u32>| n.map_or_else(|| "new".to_string(), |n| n.to_string());
            let _ = writeln!(
                s,
                "  line {:>6}  {}  uidNumber {} gidNumber {}  password {}{}  ({})",
                u.line,
                u.username,
                num(u.uid_number),
                u.gid_number
                    .map_or_else(|| "= uidNumber".to_string(), |n| n.to_string()),
                u.password
                    .as_ref()
                    .map_or_else(|| "none".to_string(), StoredPassword::kind),
                if u.disabled { "  disabled" } else { "" },
                u.source_dn
            );
        }
        if !self.groups.is_empty() {
            let _ = writeln!(s, "\ngroups:");
        }
        for g in &self.groups {
            let members: Vec<String> = g
                .members
                .iter()
                .map(|m| match m {
                    BatchMember::User(u) => u.clone(),
                    BatchMember::Group(g) => format!("group {g}"),
                })
                .collect();
            let _ = writeln!(
                s,
                "  line {:>6}  {}  gidNumber {}  members: {}  ({})",
                g.line,
                g.name,
                g.gid_number
                    .map_or_else(|| "new".to_string(), |n| n.to_string()),
                if members.is_empty() {
                    "none".to_string()
                } else {
                    members.join(", ")
                },
                g.source_dn
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(s, "\nskipped:");
        }
        for k in &self.skipped {
            let _ = writeln!(s, "  line {:>6}  {}: {}", k.line, k.dn, k.reason);
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "\nproblems:");
        }
        for p in &self.problems {
            let sev = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(s, "  line {:>6}  {sev:<7}  {}: {}", p.line, p.dn, p.message);
        }
        s
    }

    /// The plan as one JSON document (for `--dry-run --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "users": self.users.iter().map(|u| serde_json::json!({
                "line": u.line, "dn": u.source_dn, "username": u.username,
                "full_name": u.full_name, "email": u.email,
                "uid_number": u.uid_number, "gid_number": u.gid_number,
                "disabled": u.disabled, "attrs": u.attrs,
                "password": u.password.as_ref().map(StoredPassword::kind),
            })).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(|g| serde_json::json!({
                "line": g.line, "dn": g.source_dn, "name": g.name,
                "gid_number": g.gid_number, "description": g.description,
                "members": g.members.iter().map(|m| match m {
                    BatchMember::User(u) => serde_json::json!({"user": u}),
                    BatchMember::Group(g) => serde_json::json!({"group": g}),
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "skipped": self.skipped,
            "problems": self.problems,
        })
    }
}

/// Applies a plan: hashes cleartext passwords with argon2id (before the
/// transaction), then writes everything in one store batch.
pub fn apply(
    store: &Store,
    plan: &ImportPlan,
    hasher: &Hasher,
) -> Result<ImportReport, ImportError> {
    apply_with_progress(store, plan, hasher, &mut |_| {})
}

/// [`apply`], reporting progress every [`PROGRESS_EVERY`] users hashed.
pub fn apply_with_progress(
    store: &Store,
    plan: &ImportPlan,
    hasher: &Hasher,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let at = now();
    let total = plan.users.len();
    let mut batch = Batch {
        mode: BatchMode::Merge,
        ..Batch::default()
    };
    for (i, u) in plan.users.iter().enumerate() {
        if (i + 1) % PROGRESS_EVERY == 0 {
            progress(Progress {
                stage: "hashing",
                done: i + 1,
                total: Some(total),
            });
        }
        let password_hash = match &u.password {
            None => None,
            Some(StoredPassword::Argon2Phc(s) | StoredPassword::Legacy(s)) => Some(s.clone()),
            Some(StoredPassword::Cleartext(secret)) => {
                // An existing user keeps its password: skip the hashing.
                let keeps = match store.user_by_name(&u.username)? {
                    Some(ex) => store.password_hash(ex.id)?.is_some(),
                    None => false,
                };
                if keeps {
                    None
                } else {
                    Some(hasher.hash_blocking(&secret.0)?)
                }
            }
        };
        batch.users.push(BatchUser {
            user: User {
                id: UserId(Uuid::new_v4()),
                username: u.username.clone(),
                full_name: u.full_name.clone(),
                email: u.email.clone(),
                uid_number: u.uid_number.unwrap_or(0),
                gid_number: u.gid_number.unwrap_or(0),
                disabled: u.disabled,
                attrs: u.attrs.clone(),
                created: u.created.unwrap_or(at),
                modified: at,
                pwd_changed: None,
                cred_generation: 0,
            },
            allocate_uid: u.uid_number.is_none(),
            password_hash,
        });
    }
    for g in &plan.groups {
        batch.groups.push(BatchGroup {
            group: Group {
                id: GroupId(Uuid::new_v4()),
                name: g.name.clone(),
                gid_number: g.gid_number.unwrap_or(0),
                description: g.description.clone(),
                created: at,
                modified: at,
            },
            allocate_gid: g.gid_number.is_none(),
        });
        for m in &g.members {
            batch.memberships.push((g.name.clone(), m.clone()));
        }
    }
    progress(Progress {
        stage: "writing",
        done: 0,
        total: Some(batch.users.len() + batch.groups.len()),
    });
    let report = store.apply_batch(&batch)?;
    Ok(ImportReport {
        batch: report,
        problems: plan.problems.len(),
        skipped: plan.skipped.len(),
    })
}

/// What a JSON restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    #[serde(flatten)]
    pub batch: BatchReport,
    /// Devices and app passwords the backup lists without their secrets
    /// (written without `--with-secrets`), left out with `--force`.
    pub devices_skipped: usize,
    pub app_passwords_skipped: usize,
}

/// Reads a JSON backup written by [`super::export::json`] (any version up
/// to [`super::BACKUP_VERSION`]), bounded to [`MAX_JSON_BACKUP`] bytes.
pub fn read_backup(reader: impl Read) -> Result<super::Backup, ImportError> {
    let mut limited = reader.take(MAX_JSON_BACKUP + 1);
    let mut text = Vec::new();
    limited
        .read_to_end(&mut text)
        .map_err(|e| ImportError::Json(e.to_string()))?;
    if text.len() as u64 > MAX_JSON_BACKUP {
        return Err(ImportError::Json(format!(
            "the backup is larger than {MAX_JSON_BACKUP} bytes"
        )));
    }
    let backup: super::Backup =
        serde_json::from_slice(&text).map_err(|e| ImportError::Json(e.to_string()))?;
    if backup.format != super::BACKUP_FORMAT {
        return Err(ImportError::Json(format!(
            "not a portcullis backup (format {:?})",
            backup.format
        )));
    }
    if backup.version > super::BACKUP_VERSION {
        return Err(ImportError::Json(format!(
            "backup version {} is newer than the {} this build reads",
            backup.version,
            super::BACKUP_VERSION
        )));
    }
    Ok(backup)
}

/// The server key a backup carries, if any.
pub fn backup_server_key(backup: &super::Backup) -> Result<Option<ServerKey>, ImportError> {
    backup
        .server_key
        .as_ref()
        .map(|k| {
            ServerKey::from_hex(&k.0)
                .map_err(|_| ImportError::Json("server_key is not 64 hex digits".into()))
        })
        .transpose()
}

/// True when restoring `backup` writes hashes keyed with its server key.
pub fn needs_server_key(backup: &super::Backup) -> bool {
    backup.users.iter().any(|u| {
        u.app_passwords.iter().any(|a| a.hash.is_some())
            || u.mfa_devices.iter().any(|d| {
                matches!(&d.kind, super::BackupDeviceKind::Static { token_hashes: Some(h), .. } if !h.is_empty())
            })
    })
}

fn keyed_hash(what: &str, text: &str) -> Result<KeyedHash, ImportError> {
    super::unhex(text)
        .and_then(|b| KeyedHash::try_from(b.as_slice()).ok())
        .ok_or_else(|| ImportError::Json(format!("{what}: not a 64-hex-digit hash")))
}

/// A backup user's devices and app passwords as store records; those
/// listed without secrets are counted in `skipped` and left out.
fn second_factors(
    u: &super::BackupUser,
    skipped: &mut (usize, usize),
) -> Result<RawSecondFactors, ImportError> {
    let who = &u.user.username;
    let mut out = RawSecondFactors::default();
    for d in &u.mfa_devices {
        let (kind, totp_secret, totp_last_step, static_tokens) = match &d.kind {
            super::BackupDeviceKind::Totp {
                digits,
                period,
                algorithm,
                secret,
                last_step,
            } => {
                if *period != totp::PERIOD || !algorithm.eq_ignore_ascii_case("SHA1") {
                    return Err(ImportError::Json(format!(
                        "user {who}: TOTP device {} uses {algorithm} with {period}-second steps; \
                         this server supports SHA1 with {}-second steps",
                        d.id,
                        totp::PERIOD
                    )));
                }
                let Some(secret) = secret else {
                    skipped.0 += 1;
                    continue;
                };
                let bytes = totp_rs::Secret::Encoded(secret.0.clone())
                    .to_bytes()
                    .map_err(|_| {
                        ImportError::Json(format!(
                            "user {who}: the secret of TOTP device {} is not base32",
                            d.id
                        ))
                    })?;
                (
                    DeviceKind::Totp { digits: *digits },
                    Some(TotpSecret(bytes)),
                    *last_step,
                    Vec::new(),
                )
            }
            super::BackupDeviceKind::Static { token_hashes, .. } => {
                let Some(hashes) = token_hashes else {
                    skipped.0 += 1;
                    continue;
                };
                let hashes = hashes
                    .iter()
                    .map(|h| keyed_hash(&format!("user {who}: static token"), &h.0))
                    .collect::<Result<Vec<_>, _>>()?;
                (DeviceKind::Static, None, None, hashes)
            }
        };
        out.devices.push(RawDevice {
            device: Device {
                id: DeviceId(d.id),
                kind,
                label: d.label.clone(),
                created: d.created,
                confirmed: d.confirmed,
            },
            totp_secret,
            totp_last_step,
            static_tokens,
        });
    }
    for a in &u.app_passwords {
        let Some(hash) = &a.hash else {
            skipped.1 += 1;
            continue;
        };
        out.app_passwords.push(RawAppPassword {
            record: AppPassword {
                id: AppPasswordId(a.id),
                name: a.name.clone(),
                created: a.created,
                expires: a.expires,
                last_used: a.last_used,
                last_used_from: a.last_used_from.clone(),
            },
            hash: keyed_hash(&format!("user {who}: app password {}", a.id), &hash.0)?,
        });
    }
    Ok(out)
}

/// Restores a backup into `store` in one transaction: users with their
/// ids, numbers, attributes, flags, timestamps and password hashes;
/// groups with their policies; memberships; settings (global policies
/// included); the allocators; MFA devices (secrets, last accepted steps,
/// unused static tokens) and app passwords. Meant for a fresh data
/// directory; restoring the same backup twice changes nothing the second
/// time, and a store holding other records under the same names refuses
/// it.
///
/// Devices and app passwords listed without secrets cannot be restored:
/// the restore refuses the backup unless `skip_without_secrets`, and then
/// leaves them out (counted in the report). The caller installs the
/// backup's server key (see [`backup_server_key`]) before it runs this.
pub fn restore(
    store: &Store,
    backup: &super::Backup,
    skip_without_secrets: bool,
) -> Result<RestoreReport, ImportError> {
    let names: HashMap<Uuid, String> = backup
        .users
        .iter()
        .map(|u| (u.user.id.0, u.user.username.clone()))
        .collect();
    let group_names: HashMap<Uuid, String> = backup
        .groups
        .iter()
        .map(|g| (g.group.id.0, g.group.name.clone()))
        .collect();
    let mut batch = Batch {
        mode: BatchMode::Restore,
        next_uid: Some(backup.counters.next_uid),
        next_gid: Some(backup.counters.next_gid),
        settings: backup.settings.clone().into_iter().collect(),
        ..Batch::default()
    };
    let mut skipped = (0, 0);
    for u in &backup.users {
        let factors = second_factors(u, &mut skipped)?;
        if factors != RawSecondFactors::default() {
            batch
                .second_factors
                .push((u.user.username.clone(), factors));
        }
        batch.users.push(BatchUser {
            user: u.user.clone(),
            allocate_uid: false,
            password_hash: u.password_hash.clone(),
        });
    }
    if skipped != (0, 0) && !skip_without_secrets {
        return Err(ImportError::Json(format!(
            "the backup lists {} MFA devices and {} app passwords without their secrets \
             (it was written without --with-secrets), so they cannot be restored; pass --force \
             to restore without them (their users then bind without those factors)",
            skipped.0, skipped.1
        )));
    }
    for g in &backup.groups {
        for m in &g.members {
            let member = match m {
                super::BackupMember::User(id) => names.get(id).cloned().map(BatchMember::User),
                super::BackupMember::Group(id) => {
                    group_names.get(id).cloned().map(BatchMember::Group)
                }
            };
            let member = member.ok_or_else(|| {
                ImportError::Json(format!(
                    "group {} lists a member that is not in the backup",
                    g.group.name
                ))
            })?;
            batch.memberships.push((g.group.name.clone(), member));
        }
        if !g.policy.is_empty() {
            batch.group_policies.push((g.group.name.clone(), g.policy));
        }
        batch.groups.push(BatchGroup {
            group: g.group.clone(),
            allocate_gid: false,
        });
    }
    Ok(RestoreReport {
        batch: store.apply_batch(&batch)?,
        devices_skipped: skipped.0,
        app_passwords_skipped: skipped.1,
    })
}

/// [`read_backup`] then [`restore`], refusing second factors without
/// secrets. The server key is not handled here: a library caller that
/// restores keyed hashes installs the backup's key itself.
pub fn json(store: &Store, reader: impl Read) -> Result<RestoreReport, ImportError> {
    restore(store, &read_backup(reader)?, false)
}
