//! The admin socket's answers read back: the JSON document of an
//! [`AdminAnswer`] turned into the typed answer, knowing the request it
//! answers (an empty list fits users, groups, devices and app passwords
//! alike).

use serde_json::Value;

use super::AdminRequest;
use crate::account::view::AdminAnswer;

/// Reads the document [`AdminAnswer::to_json`] made for `req`.
pub fn answer_from_json(req: &AdminRequest, doc: Value) -> serde_json::Result<AdminAnswer> {
    use serde_json::from_value;
    Ok(match req {
        AdminRequest::UserShow { .. } => AdminAnswer::User(from_value(doc)?),
        AdminRequest::UserList => AdminAnswer::Users(from_value(doc)?),
        AdminRequest::UserAdd { .. }
        | AdminRequest::UserPasswd { .. }
        | AdminRequest::UserEnable { .. }
        | AdminRequest::UserDisable { .. }
        | AdminRequest::UserDelete { .. }
        | AdminRequest::UserSetAttr { .. }
        | AdminRequest::UserUnsetAttr { .. } => AdminAnswer::UserChanged(from_value(doc)?),
        AdminRequest::GroupShow { .. } => AdminAnswer::Group(from_value(doc)?),
        AdminRequest::GroupList => AdminAnswer::Groups(from_value(doc)?),
        AdminRequest::GroupAdd { .. }
        | AdminRequest::GroupDelete { .. }
        | AdminRequest::GroupAddMember { .. }
        | AdminRequest::GroupRemoveMember { .. }
        | AdminRequest::GroupAddChild { .. }
        | AdminRequest::GroupRemoveChild { .. }
        | AdminRequest::GroupSetAttr { .. }
        | AdminRequest::GroupUnsetAttr { .. } => AdminAnswer::GroupChanged(from_value(doc)?),
        AdminRequest::MfaTotpAdd { .. } => AdminAnswer::TotpAdded(from_value(doc)?),
        AdminRequest::MfaStaticAdd { .. } => AdminAnswer::StaticAdded(from_value(doc)?),
        AdminRequest::MfaList { .. } => AdminAnswer::Devices(from_value(doc)?),
        AdminRequest::MfaRemove { .. }
        | AdminRequest::AppPasswordRevoke { .. }
        | AdminRequest::TokenRevoke { .. }
        | AdminRequest::SessionEnd { .. } => AdminAnswer::Removed(from_value(doc)?),
        AdminRequest::AppPasswordAdd { .. } | AdminRequest::TokenAdd { .. } => {
            AdminAnswer::AppPasswordAdded(from_value(doc)?)
        }
        AdminRequest::AppPasswordList { .. } | AdminRequest::TokenList { .. } => {
            AdminAnswer::AppPasswords(from_value(doc)?)
        }
        AdminRequest::SessionList { .. } => AdminAnswer::Sessions(from_value(doc)?),
        AdminRequest::MfaPolicySet { .. }
        | AdminRequest::AppPasswordPolicySet { .. }
        | AdminRequest::PolicyShow => AdminAnswer::Policy(from_value(doc)?),
    })
}

#[cfg(test)]
mod tests;
