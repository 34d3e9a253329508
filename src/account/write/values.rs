//! Attribute values: their syntax checks, single-valued attributes,
//! object classes, userPassword values, and applying one change of a
//! modify request to a record.

use super::*;

/// True when `a` and `b` are the same value of an attribute of type `ty`.
pub(super) fn same_value(ty: &AttributeType, a: &str, b: &str) -> bool {
    match ty.syntax {
        Syntax::CaseExact => a == b,
        Syntax::Integer => match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
        Syntax::Dn => match (Dn::parse(a), Dn::parse(b)) {
            (Ok(x), Ok(y)) => x.normalized() == y.normalized(),
            _ => a == b,
        },
        _ => schema::fold_case_ignore_string(a) == schema::fold_case_ignore_string(b),
    }
}

/// The values of `attr` as UTF-8 text.
pub(super) fn texts(attr: &AttrValues) -> Result<Vec<String>> {
    attr.values
        .iter()
        .map(|v| {
            String::from_utf8(v.clone()).map_err(|_| {
                WriteError::InvalidAttributeSyntax(format!("{}: a value is not UTF-8", attr.name))
            })
        })
        .collect()
}

pub(super) fn known(name: &str) -> Result<&'static AttributeType> {
    schema::attribute(name).ok_or_else(|| {
        WriteError::UndefinedAttributeType(format!("{name}: attribute type undefined"))
    })
}

/// Attributes the server computes on users and groups.
pub(super) fn computed(ty: &AttributeType) -> bool {
    ty.no_user_modification || matches!(ty.name, "memberOf" | "ak-active" | "ak-superuser")
}

pub(super) fn no_user_modification(ty: &AttributeType) -> WriteError {
    WriteError::ConstraintViolation(format!("{}: no user modification allowed", ty.name))
}

/// Checks one value of a free-text attribute.
pub(super) fn check_text(ty: &AttributeType, v: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(WriteError::InvalidAttributeSyntax(format!(
            "{}: {why}",
            ty.name
        )))
    };
    if v.trim().is_empty() {
        return bad("the value is empty");
    }
    if v.chars().any(char::is_control) {
        return bad("the value contains control characters");
    }
    if v.chars().count() > MAX_TEXT {
        return Err(WriteError::ConstraintViolation(format!(
            "{}: the value is longer than {MAX_TEXT} characters",
            ty.name
        )));
    }
    Ok(())
}

pub(super) fn check_value(ty: &AttributeType, v: &str) -> Result<()> {
    match ty.name {
        "displayName" => Store::check_full_name(v)
            .map_err(|e| WriteError::InvalidAttributeSyntax(format!("displayName: {e}"))),
        "mail" => Store::check_email(v)
            .map_err(|e| WriteError::InvalidAttributeSyntax(format!("mail: {e}"))),
        "description" => Store::check_description(v)
            .map_err(|e| WriteError::InvalidAttributeSyntax(format!("description: {e}"))),
        "uidNumber" | "gidNumber" => parse_number(ty, v).map(|_| ()),
        "loginShell" | "homeDirectory" | "telephoneNumber" | "mobile" | "gecos" => {
            check_text(ty, v)?;
            crate::domain::validate::attribute(ty.name, v)
                .map_err(|e| WriteError::InvalidAttributeSyntax(e.to_string()))
        }
        _ => check_text(ty, v),
    }
}

pub(super) fn parse_number(ty: &AttributeType, v: &str) -> Result<u32> {
    let n: u32 = v.trim().parse().map_err(|_| {
        WriteError::InvalidAttributeSyntax(format!("{}: {v:?} is not a number", ty.name))
    })?;
    if n == 0 {
        return Err(WriteError::ConstraintViolation(format!(
            "{}: 0 (root) is refused",
            ty.name
        )));
    }
    Ok(n)
}

/// The single value of an attribute kept once by the store.
pub(super) fn one(ty: &AttributeType, values: &[String]) -> Result<String> {
    match values {
        [v] => Ok(v.clone()),
        [] => Err(WriteError::ProtocolError(format!(
            "{}: no values given",
            ty.name
        ))),
        _ => Err(WriteError::ConstraintViolation(format!(
            "{}: only one value is allowed",
            ty.name
        ))),
    }
}

/// RFC 4511 §4.6 on an attribute the store keeps once.
pub(super) fn apply_single(
    slot: &mut Option<String>,
    ty: &AttributeType,
    kind: ModKind,
    values: &[String],
) -> Result<()> {
    match kind {
        ModKind::Add => {
            let v = one(ty, values)?;
            check_value(ty, &v)?;
            match slot {
                Some(cur) if same_value(ty, cur, &v) => Err(WriteError::AttributeOrValueExists(
                    format!("{}: the value exists already", ty.name),
                )),
                Some(_) => Err(WriteError::ConstraintViolation(format!(
                    "{}: only one value is allowed",
                    ty.name
                ))),
                None => {
                    *slot = Some(v);
                    Ok(())
                }
            }
        }
        ModKind::Delete => {
            let Some(cur) = slot.as_deref() else {
                return Err(WriteError::NoSuchAttribute(format!(
                    "{}: no such attribute",
                    ty.name
                )));
            };
            if let Some(missing) = values.iter().find(|v| !same_value(ty, cur, v)) {
                return Err(WriteError::NoSuchAttribute(format!(
                    "{}: no such value {missing:?}",
                    ty.name
                )));
            }
            *slot = None;
            Ok(())
        }
        ModKind::Replace => {
            if values.is_empty() {
                *slot = None;
                return Ok(());
            }
            let v = one(ty, values)?;
            check_value(ty, &v)?;
            *slot = Some(v);
            Ok(())
        }
    }
}

/// A password value after classification.
pub(super) enum NewPassword {
    /// Stored as given (argon2id PHC or a legacy hash).
    Stored(String),
    Clear(Secret),
}

pub(super) fn classify_password(raw: &[u8]) -> Result<NewPassword> {
    match parse_user_password(raw) {
        Ok(StoredPassword::Argon2Phc(s)) | Ok(StoredPassword::Legacy(s)) => {
            Ok(NewPassword::Stored(s))
        }
        Ok(StoredPassword::Cleartext(secret)) => {
            if let Err(refusal) = crate::account::password::check_new(&secret.0) {
                return Err(WriteError::ConstraintViolation(format!(
                    "userPassword: {refusal}"
                )));
            }
            Ok(NewPassword::Clear(secret))
        }
        Err(e) => Err(WriteError::InvalidAttributeSyntax(format!(
            "userPassword: {e}"
        ))),
    }
}

/// Turns a password into the string to store, or asks for a hash.
pub(super) fn resolve_password(
    pw: NewPassword,
    hashed: Option<&str>,
) -> std::result::Result<String, Secret> {
    match pw {
        NewPassword::Stored(s) => Ok(s),
        NewPassword::Clear(secret) => match hashed {
            Some(phc) => Ok(phc.to_string()),
            None => Err(secret),
        },
    }
}

/// Attribute values grouped by canonical type, in request order.
pub(super) fn group_attrs(
    attrs: &[AttrValues],
) -> Result<Vec<(&'static AttributeType, Vec<&AttrValues>)>> {
    let mut out: Vec<(&'static AttributeType, Vec<&AttrValues>)> = Vec::new();
    for a in attrs {
        let ty = known(&a.name)?;
        if a.values.is_empty() {
            return Err(WriteError::ProtocolError(format!(
                "{}: no values given",
                a.name
            )));
        }
        match out.iter_mut().find(|(t, _)| std::ptr::eq(*t, ty)) {
            Some((_, list)) => list.push(a),
            None => out.push((ty, vec![a])),
        }
    }
    Ok(out)
}

pub(super) fn all_texts(list: &[&AttrValues]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for a in list {
        out.extend(texts(a)?);
    }
    Ok(out)
}

/// Object classes served for users and groups.
pub(super) const USER_CLASSES: &[&str] = &[
    "top",
    "person",
    "organizationalPerson",
    "inetOrgPerson",
    "posixAccount",
];
pub(super) const GROUP_CLASSES: &[&str] = &["top", "groupOfNames", "posixGroup"];

/// Checks the objectClass values of a new entry against `allowed`, of
/// which at least one beyond `top` must be given.
pub(super) fn check_classes(values: &[String], allowed: &[&str], what: &str) -> Result<()> {
    if values.is_empty() {
        return Err(WriteError::ObjectClassViolation(
            "objectClass is required".into(),
        ));
    }
    let mut useful = false;
    for v in values {
        let Some(oc) = schema::object_class(v) else {
            return Err(WriteError::ObjectClassViolation(format!(
                "unknown object class {v:?}"
            )));
        };
        if !allowed.contains(&oc.name) {
            return Err(WriteError::ObjectClassViolation(format!(
                "object class {} is not served for {what}s (allowed: {})",
                oc.name,
                allowed.join(", ")
            )));
        }
        useful |= oc.name != "top";
    }
    if !useful {
        return Err(WriteError::ObjectClassViolation(format!(
            "a {what} needs one of {}",
            allowed[1..].join(", ")
        )));
    }
    Ok(())
}

/// A userPassword change by an admin: one value, set by add or replace.
pub(super) fn password_change(c: &Modification, has_password: bool) -> Result<NewPassword> {
    let refuse_removal = || {
        WriteError::UnwillingToPerform(
            "userPassword cannot be removed; set a new one, or disable the user".into(),
        )
    };
    let value = match (c.kind, c.attr.values.as_slice()) {
        (ModKind::Delete, _) | (ModKind::Replace, []) => return Err(refuse_removal()),
        (ModKind::Add, []) => {
            return Err(WriteError::ProtocolError(
                "userPassword: no values given".into(),
            ))
        }
        (ModKind::Add, [_]) if has_password => {
            return Err(WriteError::ConstraintViolation(
                "userPassword: the user has a password; replace it".into(),
            ))
        }
        (_, [v]) => v,
        _ => {
            return Err(WriteError::ConstraintViolation(
                "userPassword: only one value is allowed".into(),
            ))
        }
    };
    classify_password(value)
}

/// One change of a modify request on a user record.
pub(super) fn apply_user_change(
    user: &mut User,
    ty: &'static AttributeType,
    kind: ModKind,
    values: &[String],
) -> Result<()> {
    match ty.name {
        "objectClass" => Err(WriteError::ObjectClassModsProhibited(
            "the object classes of a user are fixed".into(),
        )),
        "cn" | "uid" => Err(WriteError::NotAllowedOnRdn(format!(
            "{} is the user's name; rename it with modrdn",
            ty.name
        ))),
        "uidNumber" => Err(WriteError::UnwillingToPerform(
            "uidNumber is allocated when the user is created and never changes".into(),
        )),
        "gidNumber" => {
            let mut slot = Some(user.gid_number.to_string());
            apply_single(&mut slot, ty, kind, values)?;
            let Some(v) = slot else {
                return Err(WriteError::ObjectClassViolation(
                    "gidNumber is required by posixAccount".into(),
                ));
            };
            user.gid_number = parse_number(ty, &v)?;
            Ok(())
        }
        "displayName" => apply_single(&mut user.full_name, ty, kind, values),
        "mail" => apply_single(&mut user.email, ty, kind, values),
        _ if computed(ty) => Err(no_user_modification(ty)),
        _ if schema::user_settable(ty.name).is_some() => {
            let (key, mut slot) = match user.attrs.pair_like(ty.name) {
                Some((k, v)) => (Some(k.to_string()), Some(v.to_string())),
                None => (None, None),
            };
            apply_single(&mut slot, ty, kind, values)?;
            if let Some(k) = key {
                user.attrs.remove(&k);
            }
            if let Some(v) = slot {
                user.attrs.insert(ty.name.to_string(), v);
            }
            Ok(())
        }
        _ => Err(WriteError::ObjectClassViolation(format!(
            "{}: not allowed in a user entry",
            ty.name
        ))),
    }
}

/// RFC 4511 §4.6 on a group's direct members. `scope` picks the members
/// the attribute covers (memberUid: users only).
pub(super) fn apply_members(
    members: &mut BTreeSet<Member>,
    ty: &AttributeType,
    kind: ModKind,
    values: &[String],
    resolved: &[Option<Member>],
    scope: impl Fn(&Member) -> bool,
) -> Result<()> {
    match kind {
        ModKind::Add => {
            if values.is_empty() {
                return Err(WriteError::ProtocolError(format!(
                    "{}: no values given",
                    ty.name
                )));
            }
            for (v, m) in values.iter().zip(resolved) {
                let Some(m) = m else { continue };
                if !members.insert(*m) {
                    return Err(WriteError::AttributeOrValueExists(format!(
                        "{}: {v:?} is a member already",
                        ty.name
                    )));
                }
            }
        }
        ModKind::Delete => {
            if values.is_empty() {
                let before = members.len();
                members.retain(|m| !scope(m));
                if members.len() == before {
                    return Err(WriteError::NoSuchAttribute(format!(
                        "{}: no such attribute",
                        ty.name
                    )));
                }
            }
            for (v, m) in values.iter().zip(resolved) {
                if !m.is_some_and(|m| members.remove(&m)) {
                    return Err(WriteError::NoSuchAttribute(format!(
                        "{}: {v:?} is not a member",
                        ty.name
                    )));
                }
            }
        }
        ModKind::Replace => {
            members.retain(|m| !scope(m));
            members.extend(resolved.iter().flatten().copied());
        }
    }
    Ok(())
}
