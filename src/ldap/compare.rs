//! Compare (RFC 4511 §4.10), matched with the attribute's own syntax.

use ldap3_proto::proto::{LdapCompareRequest, LdapFilter, LdapMsg, LdapOp, LdapResultCode};

use super::handler::{Handler, Outcome, Session};
use super::result::{from_directory, ldap_result};
use crate::directory::filter::NoChain;
use crate::directory::schema;
use crate::directory::{Dn, Filter};

impl Handler {
    pub(super) async fn compare(
        &self,
        session: &mut Session,
        msgid: i32,
        req: LdapCompareRequest,
    ) -> Outcome {
        let respond = |res| Outcome::one(LdapMsg::new(msgid, LdapOp::CompareResult(res)));
        let dn = match Dn::parse(&req.dn) {
            Ok(dn) => dn,
            Err(_) => return respond(ldap_result(LdapResultCode::InvalidDNSyntax, "invalid DN")),
        };
        let Some(ty) = schema::attribute(&req.atype) else {
            return respond(ldap_result(
                LdapResultCode::UndefinedAttributeType,
                "unknown attribute type",
            ));
        };
        let Ok(value) = String::from_utf8(req.val) else {
            return respond(ldap_result(
                LdapResultCode::InvalidAttributeSyntax,
                "the assertion value is not UTF-8",
            ));
        };
        let directory = self.directory.clone();
        let identity = session.identity.clone();
        let read = tokio::task::spawn_blocking(move || directory.read(&identity, &dn)).await;
        let entry = match read {
            Ok(Ok(entry)) => entry,
            Ok(Err(e)) => return respond(from_directory(&e)),
            Err(_) => return respond(ldap_result(LdapResultCode::Other, "compare failed")),
        };
        if entry.get(ty.name).is_none() {
            return respond(ldap_result(
                LdapResultCode::NoSuchAttribute,
                "the entry has no such attribute",
            ));
        }
        let filter = Filter::from_ldap(&LdapFilter::Equality(ty.name.to_string(), value));
        let code = if filter.matches(&entry, &NoChain) {
            LdapResultCode::CompareTrue
        } else {
            LdapResultCode::CompareFalse
        };
        respond(ldap_result(code, ""))
    }
}
