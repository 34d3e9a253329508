//! Modify (RFC 4511 §4.6): changes applied in order to a copy of the
//! record, written in one compare-and-swap, planned again when the record
//! changed meanwhile.

use super::*;

impl Accounts {
    /// Modifies a user or group (RFC 4511 §4.6), all changes or none.
    /// `hashed` as for [`Accounts::add`].
    pub fn modify(
        &self,
        who: &Actor,
        dn: &Dn,
        changes: &[Modification],
        hashed: Option<&str>,
    ) -> Result<Progress> {
        let writer = self.writer(who)?;
        let mut types = Vec::with_capacity(changes.len());
        for c in changes {
            types.push(known(&c.attr.name)?);
        }
        self.ensure_disclosed(who, &writer, dn)?;
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
            if self_id.is_some() {
                self.check_own_shell(&before, &after)?;
            }
            if let Some(NewPassword::Clear(secret)) = &password {
                self.check_password_policy(&secret.0, &after)?;
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
                    if password_hash.is_some() {
                        self.password_changed(name);
                    }
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
}
