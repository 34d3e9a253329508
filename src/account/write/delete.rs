//! Delete (RFC 4511 §4.8): users and groups, never the containers, the
//! required groups or the last enabled admin.

use super::*;

impl Accounts {
    /// Deletes a user or group (RFC 4511 §4.8).
    pub fn delete(&self, who: &Actor, dn: &Dn) -> Result<Progress> {
        self.admin_only(who, dn, "delete entries")?;
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
}
