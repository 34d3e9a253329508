//! Modify DN (RFC 4511 §4.9): a rename within the same container.

use super::*;

impl Accounts {
    /// Renames a user or group within its container (RFC 4511 §4.9).
    pub fn rename(
        &self,
        who: &Actor,
        dn: &Dn,
        new_rdn: &str,
        new_superior: Option<&str>,
    ) -> Result<Progress> {
        self.admin_only(who, dn, "rename entries")?;
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
