//! LDAP writes (add, modify, delete, modify DN) mapped onto store changes,
//! with the write access rules. Knows nothing of sockets or BER: the
//! protocol layer hands in DNs and attribute values and maps
//! [`WriteError`] to result codes.
//!
//! # Who may write
//! - Admins (enabled members of `ldap.admin_group`, directly or through
//!   nested groups — the rule that gives full read access in search) may
//!   add, modify, delete and rename users and groups under `ou=users` and
//!   `ou=groups`. Members of the search group only read.
//! - Any other bound user may modify only their own entry, and only the
//!   self-service attributes [`SELF_SERVICE`]; everything else, including
//!   `userPassword` (use Password Modify, which checks the old password),
//!   is insufficientAccessRights (50). Anonymous clients may not write (50).
//!   The rules are the same on plain LDAP, LDAPS and after StartTLS.
//!
//! # Mapping
//! - Add `cn=<name>,ou=users,<base>` (objectClass among top, person,
//!   organizationalPerson, inetOrgPerson, posixAccount) creates a user;
//!   `cn=<name>,ou=groups,<base>` (top, groupOfNames, posixGroup) a group
//!   with its members. Both go through the store's batch write, the one
//!   import uses, so a new entry and its memberships land together.
//!   `cn`/`uid` must equal the RDN value; uidNumber/gidNumber are kept when
//!   given (0 is refused; a number in use is constraintViolation) and the
//!   allocators move past them. `userPassword` in clear is hashed with
//!   argon2id by the caller (off the reactor); `{SSHA}`, `{CRYPT}`,
//!   `{ARGON2}`… values are stored as import stores them.
//! - Modify applies the changes in order to a copy of the record and writes
//!   the result in one transaction (compare-and-swap; planned again if the
//!   record changed meanwhile), so a request never half-applies.
//!   Attributes the store keeps once (displayName, mail, sn, loginShell,
//!   …) hold one value: a second one is constraintViolation (19).
//!   `member`/`uniqueMember` (DNs of users and groups) and `memberUid`
//!   (user names) edit the same direct-member set. A member that does not
//!   exist is constraintViolation (19): the request, not the target entry,
//!   is at fault (noSuchObject would say the target is missing).
//! - Delete removes a user or group as `user delete`/`group delete` do;
//!   the containers answer notAllowedOnNonLeaf (66); the configured admin
//!   and search groups, and the last enabled admin, are unwillingToPerform
//!   (53), as the CLI refuses them.
//! - Modify DN renames within the same container. `deleteoldrdn` is
//!   accepted either way, but the old name is never kept: cn and uid are
//!   the name. A newSuperior other than the current parent is
//!   unwillingToPerform (53).
//! - Server-computed attributes (memberOf, entryUUID, timestamps,
//!   `ak-*`, …) are constraintViolation (19) "no user modification", as
//!   OpenLDAP answers; uidNumber/gidNumber changes after creation are
//!   unwillingToPerform (53): they are stable. Unknown attributes are
//!   undefinedAttributeType (17); known ones the entry's classes do not
//!   allow are objectClassViolation (65).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::admins::{ensure_admins_remain, Removal};
use super::{AccountError, Accounts};
use crate::auth::legacy::{parse_user_password, StoredPassword};
use crate::auth::Secret;
use crate::directory::schema::{self, AttributeType, Syntax};
use crate::directory::tree::{self, Target};
use crate::directory::{Dn, Identity};
use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchUser};
use crate::store::{now, Group, GroupId, Member, Store, StoreError, User, UserId};

/// Attributes an ordinary user may change on their own entry.
pub const SELF_SERVICE: &[&str] = &[
    "displayName",
    "givenName",
    "sn",
    "mail",
    "loginShell",
    "telephoneNumber",
    "mobile",
];

/// Longest value of a free-text attribute kept in `User::attrs`.
const MAX_TEXT: usize = 1024;
/// How often a modify is planned again because the record changed under it.
const MAX_ATTEMPTS: usize = 16;

/// One modification of a modify request (RFC 4511 §4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModKind {
    Add,
    Delete,
    Replace,
}

/// An attribute and its values as the client sent them.
#[derive(Clone, PartialEq, Eq)]
pub struct AttrValues {
    pub name: String,
    pub values: Vec<Vec<u8>>,
}

// Values may hold a userPassword: never print them.
impl std::fmt::Debug for AttrValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} values)", self.name, self.values.len())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modification {
    pub kind: ModKind,
    pub attr: AttrValues,
}

/// Why a write was refused; each variant is one LDAP result code.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// 32; `matched` is the deepest existing ancestor.
    #[error("{message}")]
    NoSuchObject {
        matched: Option<Dn>,
        message: String,
    },
    /// 50
    #[error("{0}")]
    InsufficientAccess(String),
    /// 68
    #[error("{0}")]
    AlreadyExists(String),
    /// 64
    #[error("{0}")]
    NamingViolation(String),
    /// 65
    #[error("{0}")]
    ObjectClassViolation(String),
    /// 69
    #[error("{0}")]
    ObjectClassModsProhibited(String),
    /// 17
    #[error("{0}")]
    UndefinedAttributeType(String),
    /// 21
    #[error("{0}")]
    InvalidAttributeSyntax(String),
    /// 34
    #[error("{0}")]
    InvalidDnSyntax(String),
    /// 19
    #[error("{0}")]
    ConstraintViolation(String),
    /// 16
    #[error("{0}")]
    NoSuchAttribute(String),
    /// 20
    #[error("{0}")]
    AttributeOrValueExists(String),
    /// 66
    #[error("{0}")]
    NotAllowedOnNonLeaf(String),
    /// 67
    #[error("{0}")]
    NotAllowedOnRdn(String),
    /// 53
    #[error("{0}")]
    UnwillingToPerform(String),
    /// 2
    #[error("{0}")]
    ProtocolError(String),
    /// The store failed; mapped like any store error (backend → 52).
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = WriteError> = std::result::Result<T, E>;

/// How far a write got.
#[derive(Debug)]
pub enum Progress {
    /// Written and flushed; the text is a secret-free summary for the
    /// audit log.
    Done(String),
    /// The request carries a password in clear: hash it (argon2id, off the
    /// reactor) and call again with the hash.
    NeedsHash(Secret),
}

/// Who is writing.
enum Writer {
    Admin,
    SelfService(User),
}

fn access(msg: &str) -> WriteError {
    WriteError::InsufficientAccess(msg.to_string())
}

fn admin_error(e: AccountError) -> WriteError {
    match e {
        AccountError::Invalid(m) => WriteError::UnwillingToPerform(m),
        AccountError::Denied(m) => WriteError::InsufficientAccess(m),
        AccountError::NotFound(m) => WriteError::NoSuchObject {
            matched: None,
            message: m,
        },
        AccountError::AlreadyExists(m) => WriteError::AlreadyExists(m),
        AccountError::Password(r) => WriteError::ConstraintViolation(format!("userPassword: {r}")),
        AccountError::Store(e) => WriteError::Store(e),
        e @ (AccountError::InvalidCredentials | AccountError::Busy | AccountError::Internal(_)) => {
            WriteError::Store(StoreError::Backend(e.to_string()))
        }
    }
}

/// True when `a` and `b` are the same value of an attribute of type `ty`.
fn same_value(ty: &AttributeType, a: &str, b: &str) -> bool {
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
fn texts(attr: &AttrValues) -> Result<Vec<String>> {
    attr.values
        .iter()
        .map(|v| {
            String::from_utf8(v.clone()).map_err(|_| {
                WriteError::InvalidAttributeSyntax(format!("{}: a value is not UTF-8", attr.name))
            })
        })
        .collect()
}

fn known(name: &str) -> Result<&'static AttributeType> {
    schema::attribute(name).ok_or_else(|| {
        WriteError::UndefinedAttributeType(format!("{name}: attribute type undefined"))
    })
}

/// Attributes the server computes on users and groups.
fn computed(ty: &AttributeType) -> bool {
    ty.no_user_modification || matches!(ty.name, "memberOf" | "ak-active" | "ak-superuser")
}

fn no_user_modification(ty: &AttributeType) -> WriteError {
    WriteError::ConstraintViolation(format!("{}: no user modification allowed", ty.name))
}

/// Checks one value of a free-text attribute.
fn check_text(ty: &AttributeType, v: &str) -> Result<()> {
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

fn check_value(ty: &AttributeType, v: &str) -> Result<()> {
    match ty.name {
        "displayName" => Store::check_full_name(v)
            .map_err(|e| WriteError::InvalidAttributeSyntax(format!("displayName: {e}"))),
        "mail" => Store::check_email(v)
            .map_err(|e| WriteError::InvalidAttributeSyntax(format!("mail: {e}"))),
        "description" => Store::check_description(v)
            .map_err(|e| WriteError::InvalidAttributeSyntax(format!("description: {e}"))),
        "uidNumber" | "gidNumber" => parse_number(ty, v).map(|_| ()),
        _ => check_text(ty, v),
    }
}

fn parse_number(ty: &AttributeType, v: &str) -> Result<u32> {
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
fn one(ty: &AttributeType, values: &[String]) -> Result<String> {
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
fn apply_single(
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

/// The key under which `user.attrs` holds `name`, whatever its case.
fn attr_key(user: &User, name: &str) -> Option<String> {
    user.attrs
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

/// A password value after classification.
enum NewPassword {
    /// Stored as given (argon2id PHC or a legacy hash).
    Stored(String),
    Clear(Secret),
}

fn classify_password(raw: &[u8]) -> Result<NewPassword> {
    match parse_user_password(raw) {
        Ok(StoredPassword::Argon2Phc(s)) | Ok(StoredPassword::Legacy(s)) => {
            Ok(NewPassword::Stored(s))
        }
        Ok(StoredPassword::Cleartext(secret)) => {
            if let Err(refusal) = super::password::check_new(&secret.0) {
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
fn resolve_password(pw: NewPassword, hashed: Option<&str>) -> std::result::Result<String, Secret> {
    match pw {
        NewPassword::Stored(s) => Ok(s),
        NewPassword::Clear(secret) => match hashed {
            Some(phc) => Ok(phc.to_string()),
            None => Err(secret),
        },
    }
}

/// Attribute values grouped by canonical type, in request order.
fn group_attrs(attrs: &[AttrValues]) -> Result<Vec<(&'static AttributeType, Vec<&AttrValues>)>> {
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

fn all_texts(list: &[&AttrValues]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for a in list {
        out.extend(texts(a)?);
    }
    Ok(out)
}

/// Object classes served for users and groups.
const USER_CLASSES: &[&str] = &[
    "top",
    "person",
    "organizationalPerson",
    "inetOrgPerson",
    "posixAccount",
];
const GROUP_CLASSES: &[&str] = &["top", "groupOfNames", "posixGroup"];

/// Checks the objectClass values of a new entry against `allowed`, of
/// which at least one beyond `top` must be given.
fn check_classes(values: &[String], allowed: &[&str], what: &str) -> Result<()> {
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

impl Accounts {
    fn writer(&self, who: &Identity) -> Result<Writer> {
        let Identity::User { id, .. } = who else {
            return Err(access("anonymous clients may not write; bind first"));
        };
        // A user deleted or disabled since binding writes nothing.
        let user = match self.store().user(*id)? {
            Some(u) if !u.disabled => u,
            _ => return Err(access("no write access")),
        };
        if self.is_admin(who)? {
            Ok(Writer::Admin)
        } else {
            Ok(Writer::SelfService(user))
        }
    }

    fn admin_only(&self, who: &Identity, what: &str) -> Result<()> {
        match self.writer(who)? {
            Writer::Admin => Ok(()),
            Writer::SelfService(_) => Err(access(&format!("only admins may {what}"))),
        }
    }

    /// The deepest existing ancestor of `dn` (for matchedDN).
    fn matched(&self, dn: &Dn) -> Result<Option<Dn>> {
        let mut cur = dn.parent();
        while let Some(p) = cur {
            let exists = match tree::classify(&p, self.base()) {
                Target::Base | Target::UsersOu | Target::GroupsOu => true,
                Target::User(n) => self.store().user_by_name(&n)?.is_some(),
                Target::Group(n) => self.store().group_by_name(&n)?.is_some(),
                Target::RootDse => return Ok(None),
                _ => false,
            };
            if exists {
                return Ok(Some(p));
            }
            cur = p.parent();
        }
        Ok(None)
    }

    fn no_such(&self, dn: &Dn) -> Result<WriteError> {
        Ok(WriteError::NoSuchObject {
            matched: self.matched(dn)?,
            message: "no such object".into(),
        })
    }

    fn find_user(&self, dn: &Dn, name: &str) -> Result<User> {
        match self.store().user_by_name(name)? {
            Some(u) => Ok(u),
            None => Err(self.no_such(dn)?),
        }
    }

    fn find_group(&self, dn: &Dn, name: &str) -> Result<Group> {
        match self.store().group_by_name(name)? {
            Some(g) => Ok(g),
            None => Err(self.no_such(dn)?),
        }
    }

    /// A member DN as a user or group of this directory; `None` when it
    /// names nothing that exists.
    fn member_by_dn(&self, value: &str) -> Result<Option<Member>> {
        let dn = Dn::parse(value).map_err(|_| {
            WriteError::InvalidAttributeSyntax(format!("member: {value:?} is not a DN"))
        })?;
        Ok(match tree::classify(&dn, self.base()) {
            Target::User(n) => self.store().user_by_name(&n)?.map(|u| Member::User(u.id)),
            Target::Group(n) => self.store().group_by_name(&n)?.map(|g| Member::Group(g.id)),
            _ => None,
        })
    }

    fn is_required_group(&self, name: &str) -> bool {
        let (admins, search) = self.group_names();
        name.eq_ignore_ascii_case(admins) || name.eq_ignore_ascii_case(search)
    }

    // --- add ---

    /// Adds a user or group (RFC 4511 §4.7). `hashed` is the argon2id hash
    /// of the cleartext password that a previous call asked for.
    pub fn add(
        &self,
        who: &Identity,
        dn: &Dn,
        attrs: &[AttrValues],
        hashed: Option<&str>,
    ) -> Result<Progress> {
        self.admin_only(who, "add entries")?;
        match tree::classify(dn, self.base()) {
            Target::User(name) => self.add_user(&name, attrs, hashed),
            Target::Group(name) => self.add_group(&name, attrs),
            Target::RootDse
            | Target::Subschema
            | Target::Base
            | Target::UsersOu
            | Target::GroupsOu => Err(WriteError::AlreadyExists("the entry exists".into())),
            Target::Missing => {
                let matched = self.matched(dn)?;
                if matched.is_some() && matched == dn.parent() {
                    Err(WriteError::NamingViolation(format!(
                        "entries can only be added as cn=<name>,{} or cn=<name>,{}",
                        tree::users_ou(self.base()),
                        tree::groups_ou(self.base())
                    )))
                } else {
                    Err(WriteError::NoSuchObject {
                        matched,
                        message: "the parent entry does not exist".into(),
                    })
                }
            }
            Target::Outside => Err(WriteError::NoSuchObject {
                matched: None,
                message: format!("the entry is not under {}", self.base()),
            }),
        }
    }

    fn add_user(&self, name: &str, attrs: &[AttrValues], hashed: Option<&str>) -> Result<Progress> {
        Store::check_user_name(name).map_err(|e| WriteError::NamingViolation(e.to_string()))?;
        // Before any hashing; the batch checks again atomically.
        if self.store().user_by_name(name)?.is_some() {
            return Err(WriteError::AlreadyExists(format!("user {name} exists")));
        }
        let grouped = group_attrs(attrs)?;
        let classes = grouped
            .iter()
            .find(|(t, _)| t.name == "objectClass")
            .map(|(_, l)| all_texts(l))
            .transpose()?
            .unwrap_or_default();
        check_classes(&classes, USER_CLASSES, "user")?;
        let at = now();
        let mut user = User {
            id: UserId(Uuid::new_v4()),
            username: name.to_string(),
            full_name: None,
            email: None,
            uid_number: 0,
            gid_number: 0,
            disabled: false,
            attrs: BTreeMap::new(),
            created: at,
            modified: at,
            pwd_changed: None,
            cred_generation: 0,
        };
        let mut uid = None;
        let mut password = None;
        for (ty, list) in &grouped {
            if ty.name == "userPassword" {
                let raw: Vec<&Vec<u8>> = list.iter().flat_map(|a| &a.values).collect();
                let [value] = raw.as_slice() else {
                    return Err(WriteError::ConstraintViolation(
                        "userPassword: only one value is allowed".into(),
                    ));
                };
                password = Some(classify_password(value)?);
                continue;
            }
            let values = all_texts(list)?;
            match ty.name {
                "objectClass" => {}
                "cn" | "uid" => {
                    if let Some(v) = values.iter().find(|v| !v.eq_ignore_ascii_case(name)) {
                        return Err(WriteError::ConstraintViolation(format!(
                            "{}: {v:?} differs from the entry's name {name:?} (cn and uid are \
                             the user name)",
                            ty.name
                        )));
                    }
                }
                "displayName" => {
                    let v = one(ty, &values)?;
                    check_value(ty, &v)?;
                    user.full_name = Some(v);
                }
                "mail" => {
                    let v = one(ty, &values)?;
                    check_value(ty, &v)?;
                    if self.store().user_by_email(&v)?.is_some() {
                        return Err(WriteError::ConstraintViolation(format!(
                            "mail: {v} is used by another user"
                        )));
                    }
                    user.email = Some(v);
                }
                "uidNumber" => {
                    let n = parse_number(ty, &one(ty, &values)?)?;
                    if self.store().user_by_uid_number(n)?.is_some() {
                        return Err(WriteError::ConstraintViolation(format!(
                            "uidNumber: {n} is used by another user"
                        )));
                    }
                    uid = Some(n);
                }
                "gidNumber" => user.gid_number = parse_number(ty, &one(ty, &values)?)?,
                _ if computed(ty) => return Err(no_user_modification(ty)),
                _ if schema::user_settable(ty.name).is_some() => {
                    let v = one(ty, &values)?;
                    check_value(ty, &v)?;
                    user.attrs.insert(ty.name.to_string(), v);
                }
                _ => {
                    return Err(WriteError::ObjectClassViolation(format!(
                        "{}: not allowed in a user entry",
                        ty.name
                    )))
                }
            }
        }
        let password_hash = match password.map(|p| resolve_password(p, hashed)).transpose() {
            Ok(h) => h,
            Err(secret) => return Ok(Progress::NeedsHash(secret)),
        };
        if let Some(n) = uid {
            user.uid_number = n;
            if user.gid_number == 0 {
                user.gid_number = n;
            }
        }
        if password_hash.is_some() {
            user.pwd_changed = Some(at);
        }
        let batch = Batch {
            mode: BatchMode::Restore,
            users: vec![BatchUser {
                user,
                allocate_uid: uid.is_none(),
                password_hash,
            }],
            ..Batch::default()
        };
        self.store().apply_batch(&batch).map_err(|e| match e {
            // A name, number or address taken since the checks above.
            StoreError::AlreadyExists(_) => WriteError::AlreadyExists(format!(
                "user {name}, its uidNumber or its mail was taken meanwhile"
            )),
            e => WriteError::Store(e),
        })?;
        done(format!("added user {name}"))
    }

    fn add_group(&self, name: &str, attrs: &[AttrValues]) -> Result<Progress> {
        Store::check_group_name(name).map_err(|e| WriteError::NamingViolation(e.to_string()))?;
        if self.store().group_by_name(name)?.is_some() {
            return Err(WriteError::AlreadyExists(format!("group {name} exists")));
        }
        let grouped = group_attrs(attrs)?;
        let classes = grouped
            .iter()
            .find(|(t, _)| t.name == "objectClass")
            .map(|(_, l)| all_texts(l))
            .transpose()?
            .unwrap_or_default();
        check_classes(&classes, GROUP_CLASSES, "group")?;
        let at = now();
        let mut group = Group {
            id: GroupId(Uuid::new_v4()),
            name: name.to_string(),
            gid_number: 0,
            description: None,
            created: at,
            modified: at,
        };
        let mut members: BTreeSet<BatchMember> = BTreeSet::new();
        for (ty, list) in &grouped {
            let values = all_texts(list)?;
            match ty.name {
                "objectClass" => {}
                "cn" => {
                    if let Some(v) = values.iter().find(|v| !v.eq_ignore_ascii_case(name)) {
                        return Err(WriteError::ConstraintViolation(format!(
                            "cn: {v:?} differs from the entry's name {name:?}"
                        )));
                    }
                }
                "description" => {
                    let v = one(ty, &values)?;
                    check_value(ty, &v)?;
                    group.description = Some(v);
                }
                "gidNumber" => {
                    let n = parse_number(ty, &one(ty, &values)?)?;
                    if self.store().group_by_gid_number(n)?.is_some() {
                        return Err(WriteError::ConstraintViolation(format!(
                            "gidNumber: {n} is used by another group"
                        )));
                    }
                    group.gid_number = n;
                }
                "member" | "uniqueMember" => {
                    for v in &values {
                        let member = match self.member_by_dn(v)? {
                            Some(Member::User(id)) => self
                                .store()
                                .user(id)?
                                .map(|u| BatchMember::User(u.username)),
                            Some(Member::Group(id)) => {
                                self.store().group(id)?.map(|g| BatchMember::Group(g.name))
                            }
                            None => None,
                        };
                        members.insert(member.ok_or_else(|| {
                            WriteError::ConstraintViolation(format!(
                                "{}: {v:?} is not an existing user or group",
                                ty.name
                            ))
                        })?);
                    }
                }
                "memberUid" => {
                    for v in &values {
                        let user = self.store().user_by_name(v)?.ok_or_else(|| {
                            WriteError::ConstraintViolation(format!("memberUid: no user {v:?}"))
                        })?;
                        members.insert(BatchMember::User(user.username));
                    }
                }
                _ if computed(ty) => return Err(no_user_modification(ty)),
                _ => {
                    return Err(WriteError::ObjectClassViolation(format!(
                        "{}: not allowed in a group entry",
                        ty.name
                    )))
                }
            }
        }
        let allocate_gid = group.gid_number == 0;
        let batch = Batch {
            mode: BatchMode::Restore,
            groups: vec![BatchGroup {
                group,
                allocate_gid,
            }],
            memberships: members.into_iter().map(|m| (name.to_string(), m)).collect(),
            ..Batch::default()
        };
        self.store().apply_batch(&batch).map_err(|e| match e {
            StoreError::AlreadyExists(_) => WriteError::AlreadyExists(format!(
                "group {name} or its gidNumber was taken meanwhile"
            )),
            StoreError::NotFound(what) => {
                WriteError::ConstraintViolation(format!("member {what} was deleted meanwhile"))
            }
            e => WriteError::Store(e),
        })?;
        done(format!("added group {name}"))
    }

    // --- modify ---

    /// Modifies a user or group (RFC 4511 §4.6), all changes or none.
    /// `hashed` as for [`Directory::add`].
    pub fn modify(
        &self,
        who: &Identity,
        dn: &Dn,
        changes: &[Modification],
        hashed: Option<&str>,
    ) -> Result<Progress> {
        let writer = self.writer(who)?;
        let mut types = Vec::with_capacity(changes.len());
        for c in changes {
            types.push(known(&c.attr.name)?);
        }
        let target = tree::classify(dn, self.base());
        if let Writer::SelfService(me) = &writer {
            let own = matches!(&target, Target::User(n) if n.eq_ignore_ascii_case(&me.username));
            if !own {
                return Err(access("you may modify only your own entry"));
            }
            for ty in &types {
                if ty.name == "userPassword" {
                    return Err(access(
                        "change your password with the Password Modify operation (ldappasswd), \
                         which checks the old one",
                    ));
                }
                if !SELF_SERVICE.contains(&ty.name) {
                    return Err(access(&format!("you may not change {}", ty.name)));
                }
            }
        }
        match target {
            Target::User(name) => {
                let self_id = match &writer {
                    Writer::SelfService(me) => Some(me.id),
                    Writer::Admin => None,
                };
                self.modify_user(dn, &name, changes, &types, hashed, self_id)
            }
            Target::Group(name) => self.modify_group(dn, &name, changes, &types),
            Target::RootDse
            | Target::Subschema
            | Target::Base
            | Target::UsersOu
            | Target::GroupsOu => Err(WriteError::UnwillingToPerform(
                "this entry is maintained by the server".into(),
            )),
            Target::Missing | Target::Outside => Err(self.no_such(dn)?),
        }
    }

    fn modify_user(
        &self,
        dn: &Dn,
        name: &str,
        changes: &[Modification],
        types: &[&'static AttributeType],
        hashed: Option<&str>,
        self_id: Option<UserId>,
    ) -> Result<Progress> {
        for _ in 0..MAX_ATTEMPTS {
            let before = self.find_user(dn, name)?;
            if self_id.is_some_and(|id| id != before.id) {
                return Err(access("you may modify only your own entry"));
            }
            let has_password = self.store().password_hash(before.id)?.is_some();
            let mut after = before.clone();
            let mut password: Option<NewPassword> = None;
            for (c, ty) in changes.iter().zip(types) {
                if ty.name == "userPassword" {
                    password = Some(password_change(c, has_password || password.is_some())?);
                    continue;
                }
                let values = texts(&c.attr)?;
                apply_user_change(&mut after, ty, c.kind, &values)?;
            }
            let password_hash = match password.map(|p| resolve_password(p, hashed)).transpose() {
                Ok(h) => h,
                Err(secret) => return Ok(Progress::NeedsHash(secret)),
            };
            if after == before && password_hash.is_none() {
                return Ok(Progress::Done(format!("modified user {name} (no change)")));
            }
            if after.email != before.email {
                if let Some(email) = &after.email {
                    if self
                        .store()
                        .user_by_email(email)?
                        .is_some_and(|u| u.id != before.id)
                    {
                        return Err(WriteError::ConstraintViolation(format!(
                            "mail: {email} is used by another user"
                        )));
                    }
                }
            }
            match self
                .store()
                .replace_user(&before, &after, password_hash.as_deref())
            {
                Ok(Some(_)) => {
                    let what = if password_hash.is_some() {
                        " (password set)"
                    } else {
                        ""
                    };
                    return done(format!("modified user {name}{what}"));
                }
                Ok(None) => continue,
                Err(StoreError::AlreadyExists(what)) => {
                    return Err(WriteError::ConstraintViolation(format!(
                        "{what} is used by another user"
                    )))
                }
                Err(StoreError::Invalid(why)) => return Err(WriteError::ConstraintViolation(why)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(WriteError::Store(StoreError::Backend(format!(
            "user {name} kept changing during {MAX_ATTEMPTS} attempts"
        ))))
    }

    fn modify_group(
        &self,
        dn: &Dn,
        name: &str,
        changes: &[Modification],
        types: &[&'static AttributeType],
    ) -> Result<Progress> {
        for _ in 0..MAX_ATTEMPTS {
            let found = self.find_group(dn, name)?;
            let Some(snap) = self.store().group_snapshot(found.id)? else {
                continue;
            };
            let mut after = snap.group.clone();
            let mut members = snap.members.clone();
            for (c, ty) in changes.iter().zip(types) {
                let values = texts(&c.attr)?;
                match ty.name {
                    "objectClass" => {
                        return Err(WriteError::ObjectClassModsProhibited(
                            "the object classes of a group are fixed".into(),
                        ))
                    }
                    "cn" => {
                        return Err(WriteError::NotAllowedOnRdn(
                            "cn is the group's name; rename it with modrdn".into(),
                        ))
                    }
                    "gidNumber" => {
                        return Err(WriteError::UnwillingToPerform(
                            "gidNumber is allocated when the group is created and never changes"
                                .into(),
                        ))
                    }
                    "description" => {
                        apply_single(&mut after.description, ty, c.kind, &values)?;
                    }
                    "member" | "uniqueMember" => {
                        let resolved =
                            self.resolve_members(ty, c.kind, &values, |s, v| s.member_by_dn(v))?;
                        apply_members(&mut members, ty, c.kind, &values, &resolved, |_| true)?;
                    }
                    "memberUid" => {
                        let resolved = self.resolve_members(ty, c.kind, &values, |s, v| {
                            Ok(s.store().user_by_name(v)?.map(|u| Member::User(u.id)))
                        })?;
                        apply_members(&mut members, ty, c.kind, &values, &resolved, |m| {
                            matches!(m, Member::User(_))
                        })?;
                    }
                    _ if computed(ty) => return Err(no_user_modification(ty)),
                    _ => {
                        return Err(WriteError::ObjectClassViolation(format!(
                            "{}: not allowed in a group entry",
                            ty.name
                        )))
                    }
                }
            }
            if after == snap.group && members == snap.members {
                return Ok(Progress::Done(format!("modified group {name} (no change)")));
            }
            let removals: Vec<Removal> = snap
                .members
                .difference(&members)
                .map(|&m| Removal::Edge(snap.group.id, m))
                .collect();
            let (admin_group, _) = self.group_names();
            ensure_admins_remain(self.store(), admin_group, &removals).map_err(admin_error)?;
            match self.store().replace_group(&snap, &after, &members) {
                Ok(Some(_)) => return done(format!("modified group {name}")),
                Ok(None) => continue,
                Err(StoreError::NotFound(what)) => {
                    return Err(WriteError::ConstraintViolation(format!(
                        "member {what} does not exist"
                    )))
                }
                Err(StoreError::Invalid(why)) => return Err(WriteError::ConstraintViolation(why)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(WriteError::Store(StoreError::Backend(format!(
            "group {name} kept changing during {MAX_ATTEMPTS} attempts"
        ))))
    }

    /// The members named by `values`; `None` for a name that matches
    /// nothing. An add needs every one to exist.
    fn resolve_members(
        &self,
        ty: &AttributeType,
        kind: ModKind,
        values: &[String],
        lookup: impl Fn(&Accounts, &str) -> Result<Option<Member>>,
    ) -> Result<Vec<Option<Member>>> {
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let m = lookup(self, v)?;
            if m.is_none() && kind != ModKind::Delete {
                return Err(WriteError::ConstraintViolation(format!(
                    "{}: {v:?} is not an existing {}",
                    ty.name,
                    if ty.name == "memberUid" {
                        "user"
                    } else {
                        "user or group"
                    }
                )));
            }
            out.push(m);
        }
        Ok(out)
    }

    // --- delete ---

    /// Deletes a user or group (RFC 4511 §4.8).
    pub fn delete(&self, who: &Identity, dn: &Dn) -> Result<Progress> {
        self.admin_only(who, "delete entries")?;
        let (admin_group, _) = self.group_names();
        match tree::classify(dn, self.base()) {
            Target::User(name) => {
                let user = self.find_user(dn, &name)?;
                ensure_admins_remain(self.store(), admin_group, &[Removal::User(user.id)])
                    .map_err(admin_error)?;
                self.store().delete_user(user.id)?;
                done(format!("deleted user {}", user.username))
            }
            Target::Group(name) => {
                let group = self.find_group(dn, &name)?;
                if self.is_required_group(&group.name) {
                    return Err(WriteError::UnwillingToPerform(format!(
                        "group {} is required by the server",
                        group.name
                    )));
                }
                ensure_admins_remain(self.store(), admin_group, &[Removal::Group(group.id)])
                    .map_err(admin_error)?;
                self.store().delete_group(group.id)?;
                done(format!("deleted group {}", group.name))
            }
            Target::Base | Target::UsersOu | Target::GroupsOu => Err(
                WriteError::NotAllowedOnNonLeaf("the entry has subordinates".into()),
            ),
            Target::RootDse | Target::Subschema => Err(WriteError::UnwillingToPerform(
                "this entry is maintained by the server".into(),
            )),
            Target::Missing | Target::Outside => Err(self.no_such(dn)?),
        }
    }

    // --- modify DN ---

    /// Renames a user or group within its container (RFC 4511 §4.9).
    pub fn rename(
        &self,
        who: &Identity,
        dn: &Dn,
        new_rdn: &str,
        new_superior: Option<&str>,
    ) -> Result<Progress> {
        self.admin_only(who, "rename entries")?;
        let target = tree::classify(dn, self.base());
        match &target {
            Target::User(_) | Target::Group(_) => {}
            Target::Base | Target::UsersOu | Target::GroupsOu => {
                return Err(WriteError::NotAllowedOnNonLeaf(
                    "the entry has subordinates".into(),
                ))
            }
            Target::RootDse | Target::Subschema => {
                return Err(WriteError::UnwillingToPerform(
                    "this entry is maintained by the server".into(),
                ))
            }
            Target::Missing | Target::Outside => return Err(self.no_such(dn)?),
        }
        let parent = dn.parent().unwrap_or_else(Dn::root);
        if let Some(sup) = new_superior {
            let sup = Dn::parse(sup)
                .map_err(|_| WriteError::InvalidDnSyntax("newSuperior is not a DN".into()))?;
            if sup.normalized() != parent.normalized() {
                return Err(WriteError::UnwillingToPerform(
                    "entries cannot move to another container".into(),
                ));
            }
        }
        let rdn = Dn::parse(new_rdn)
            .map_err(|_| WriteError::InvalidDnSyntax("newrdn is not an RDN".into()))?;
        let new_dn = match rdn.rdns() {
            [one] => parent.child_rdn(one.clone()),
            _ => return Err(WriteError::InvalidDnSyntax("newrdn is not an RDN".into())),
        };
        let new_target = tree::classify(&new_dn, self.base());
        match (target, new_target) {
            (Target::User(old), Target::User(new)) => {
                Store::check_user_name(&new)
                    .map_err(|e| WriteError::NamingViolation(e.to_string()))?;
                let user = self.find_user(dn, &old)?;
                if user.username == new {
                    return Ok(Progress::Done(format!("renamed user {old} (no change)")));
                }
                match self.store().rename_user(user.id, &new) {
                    Ok(_) => {}
                    Err(StoreError::AlreadyExists(_)) => {
                        return Err(WriteError::AlreadyExists(format!("user {new} exists")))
                    }
                    Err(e) => return Err(e.into()),
                }
                done(format!("renamed user {old} to {new}"))
            }
            (Target::Group(old), Target::Group(new)) => {
                Store::check_group_name(&new)
                    .map_err(|e| WriteError::NamingViolation(e.to_string()))?;
                let group = self.find_group(dn, &old)?;
                if group.name == new {
                    return Ok(Progress::Done(format!("renamed group {old} (no change)")));
                }
                if self.is_required_group(&group.name) {
                    return Err(WriteError::UnwillingToPerform(format!(
                        "group {} is named in the configuration and cannot be renamed",
                        group.name
                    )));
                }
                match self.store().rename_group(group.id, &new) {
                    Ok(_) => {}
                    Err(StoreError::AlreadyExists(_)) => {
                        return Err(WriteError::AlreadyExists(format!("group {new} exists")))
                    }
                    Err(e) => return Err(e.into()),
                }
                done(format!("renamed group {old} to {new}"))
            }
            _ => Err(WriteError::NamingViolation(
                "users are named cn=<name> (or uid=<name>), groups cn=<name>".into(),
            )),
        }
    }
}

/// A write that committed (durably: the store's writes are).
fn done(summary: String) -> Result<Progress> {
    Ok(Progress::Done(summary))
}

/// A userPassword change by an admin: one value, set by add or replace.
fn password_change(c: &Modification, has_password: bool) -> Result<NewPassword> {
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
fn apply_user_change(
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
            let key = attr_key(user, ty.name);
            let mut slot = key.as_ref().and_then(|k| user.attrs.get(k).cloned());
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
fn apply_members(
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

#[cfg(test)]
mod tests;
