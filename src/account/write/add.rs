//! Add (RFC 4511 §4.7): a new user or group with its memberships, in one
//! batch write.

use super::*;
use crate::store::Timestamp;

impl Accounts {
    /// Adds a user or group (RFC 4511 §4.7). `hashed` is the argon2id hash
    /// of the cleartext password that a previous call asked for.
    pub fn add(
        &self,
        who: &Actor,
        dn: &Dn,
        attrs: &[AttrValues],
        hashed: Option<&str>,
    ) -> Result<Progress> {
        let parent = dn.parent().unwrap_or_else(Dn::root);
        self.admin_only(who, &parent, "add entries")?;
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
        let mut user = new_user(name, at);
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
        if let Some(NewPassword::Clear(secret)) = &password {
            self.check_password_policy(&secret.0, &user)?;
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
}

/// A user record named `name`, created `at`, before its attributes; its
/// numbers are allocated by the batch unless the entry gives them.
fn new_user(name: &str, at: Timestamp) -> User {
    User {
        id: UserId(Uuid::new_v4()),
        username: name.to_string(),
        full_name: None,
        email: None,
        uid_number: 0,
        gid_number: 0,
        disabled: false,
        attrs: Attrs::new(),
        created: at,
        modified: at,
        pwd_changed: None,
        cred_generation: 0,
    }
}
