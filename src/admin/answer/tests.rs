//! The wire format, pinned: every kind of answer serializes to the document
//! the admin socket carried before answers were typed, and reads back into
//! the same answer. The expected texts are the documents the `Value`-building
//! code produced on a temporary store; values that run left null or empty (a
//! group's app-password setting, a global override, a last use, a user's
//! groups) are filled in with the shape that code gave them.

use super::*;
use crate::account::view::*;
use std::collections::{BTreeMap, BTreeSet};
use std::mem::discriminant;

const T0: &str = "2026-12-03T07:41:32Z";
const T1: &str = "2026-12-03T08:41:32Z";

fn s(x: &str) -> String {
    x.to_string()
}

fn t(x: &str) -> Option<String> {
    Some(s(x))
}

fn alice() -> UserView {
    UserView {
        id: s("d3cf5a47-8f8f-4409-9ba5-856fbbbba984"),
        username: s("alice"),
        dn: s("cn=alice,ou=users,dc=example,dc=com"),
        full_name: t("Alice"),
        email: t("a@example.com"),
        uid_number: 2001,
        gid_number: 2001,
        disabled: false,
        groups: vec![],
        attrs: BTreeMap::from([(s("loginShell"), s("/bin/zsh"))]),
        created: t(T0),
        modified: t(T0),
        pwd_changed: t(T0),
    }
}

const ALICE: &str = r#"{"attrs":{"loginShell":"/bin/zsh"},"created":"2026-12-03T07:41:32Z","disabled":false,"dn":"cn=alice,ou=users,dc=example,dc=com","email":"a@example.com","full_name":"Alice","gid_number":2001,"groups":[],"id":"d3cf5a47-8f8f-4409-9ba5-856fbbbba984","modified":"2026-12-03T07:41:32Z","pwd_changed":"2026-12-03T07:41:32Z","uid_number":2001,"username":"alice"}"#;

fn bob() -> UserView {
    UserView {
        id: s("88d87e94-773d-48e2-accb-a36731b68efa"),
        username: s("bob"),
        dn: s("cn=bob,ou=users,dc=example,dc=com"),
        full_name: None,
        email: None,
        uid_number: 2002,
        gid_number: 2002,
        disabled: true,
        groups: vec![s("staff")],
        attrs: BTreeMap::new(),
        created: t(T0),
        modified: t(T0),
        pwd_changed: None,
    }
}

const BOB: &str = r#"{"attrs":{},"created":"2026-12-03T07:41:32Z","disabled":true,"dn":"cn=bob,ou=users,dc=example,dc=com","email":null,"full_name":null,"gid_number":2002,"groups":["staff"],"id":"88d87e94-773d-48e2-accb-a36731b68efa","modified":"2026-12-03T07:41:32Z","pwd_changed":null,"uid_number":2002,"username":"bob"}"#;

fn staff() -> GroupView {
    GroupView {
        id: s("8e904fb6-d225-47fc-8aec-beab460c6a98"),
        name: s("staff"),
        dn: s("cn=staff,ou=groups,dc=example,dc=com"),
        gid_number: 4002,
        description: t("Everyone"),
        members: vec![s("alice")],
        child_groups: vec![s("devs")],
        parent_groups: vec![],
        created: t(T0),
        modified: t(T0),
    }
}

const STAFF: &str = r#"{"child_groups":["devs"],"created":"2026-12-03T07:41:32Z","description":"Everyone","dn":"cn=staff,ou=groups,dc=example,dc=com","gid_number":4002,"id":"8e904fb6-d225-47fc-8aec-beab460c6a98","members":["alice"],"modified":"2026-12-03T07:41:32Z","name":"staff","parent_groups":[]}"#;

fn devs() -> GroupView {
    GroupView {
        id: s("f9df0baf-62ee-454a-a6b6-683569c58051"),
        name: s("devs"),
        dn: s("cn=devs,ou=groups,dc=example,dc=com"),
        gid_number: 4003,
        description: None,
        members: vec![],
        child_groups: vec![],
        parent_groups: vec![s("staff")],
        created: t(T0),
        modified: t(T0),
    }
}

const DEVS: &str = r#"{"child_groups":[],"created":"2026-12-03T07:41:32Z","description":null,"dn":"cn=devs,ou=groups,dc=example,dc=com","gid_number":4003,"id":"f9df0baf-62ee-454a-a6b6-683569c58051","members":[],"modified":"2026-12-03T07:41:32Z","name":"devs","parent_groups":["staff"]}"#;

const SECRET: &str = "B74T7JFM27BHPM3IOI2DAKPAROX2DPU7";
const URI: &str = "otpauth://totp/Portcullis:alice?secret=B74T7JFM27BHPM3IOI2DAKPAROX2DPU7&issuer=Portcullis&algorithm=SHA1&digits=6&period=30";
const TOKENS: [&str; 2] = ["RQPRUE5Z6XZ7", "87DHG3R86E2J"];
const APP_SECRET: &str = "pcap_3dln5fm6yt7ihcnf5rdldtijvi6rwpsc";
const PRECEDENCE: &str = "an explicit group policy beats the global one; among a user's groups (nested included) the strictest wins; the global override beats the config";

fn totp_added() -> TotpAdded {
    TotpAdded {
        id: s("319dbd0d-563a-4e04-a0e9-662891be90d0"),
        secret: Secret::new(s(SECRET)),
        uri: Secret::new(s(URI)),
        digits: 6,
        period: 30,
        algorithm: s("SHA1"),
    }
}

fn static_added() -> StaticAdded {
    StaticAdded {
        id: s("a05e1e5e-17df-4fb4-b539-013de0f46da2"),
        tokens: Secret::new(TOKENS.iter().map(|x| s(x)).collect()),
    }
}

fn app_password_added(expires: Option<String>) -> AppPasswordAdded {
    AppPasswordAdded {
        id: s("ffe943ca-6645-4bcf-8ef8-1bad79b99ec0"),
        name: s("mail"),
        secret: Secret::new(s(APP_SECRET)),
        expires,
    }
}

fn policy(mfa_override: Option<String>) -> PolicyView {
    PolicyView {
        mfa: PolicySource {
            config: s("if-enrolled"),
            overridden: mfa_override,
            effective: s("if-enrolled"),
        },
        app_passwords: PolicySource {
            config: s("on"),
            overridden: None,
            effective: s("on"),
        },
        groups: vec![
            GroupPolicyView {
                group: s("staff"),
                mfa: t("required"),
                app_passwords: None,
            },
            GroupPolicyView {
                group: s("svc"),
                mfa: None,
                app_passwords: t("off"),
            },
        ],
        precedence: s(PRECEDENCE),
    }
}

type Pinned = (AdminRequest, AdminAnswer, String);

/// Every kind of answer, a request it answers, and its document.
fn every_answer() -> Vec<Pinned> {
    let mut all = directory_answers();
    all.extend(mfa_answers());
    all.extend(app_password_and_policy_answers());
    all
}

fn directory_answers() -> Vec<Pinned> {
    let user = |username: &str| AdminRequest::UserShow {
        username: s(username),
    };
    vec![
        (user("alice"), AdminAnswer::User(alice()), s(ALICE)),
        (
            AdminRequest::UserList,
            AdminAnswer::Users(vec![alice(), bob()]),
            format!("[{ALICE},{BOB}]"),
        ),
        (AdminRequest::UserList, AdminAnswer::Users(vec![]), s("[]")),
        (
            AdminRequest::UserSetAttr {
                username: s("alice"),
                key: s("loginShell"),
                value: s("/bin/zsh"),
            },
            AdminAnswer::UserChanged(UserChanged::new(true, alice())),
            format!(r#"{{"changed":true,"ok":true,"user":{ALICE}}}"#),
        ),
        (
            AdminRequest::UserDisable { username: s("bob") },
            AdminAnswer::UserChanged(UserChanged::new(false, bob())),
            format!(r#"{{"changed":false,"ok":true,"user":{BOB}}}"#),
        ),
        (
            AdminRequest::GroupShow { name: s("staff") },
            AdminAnswer::Group(staff()),
            s(STAFF),
        ),
        (
            AdminRequest::GroupList,
            AdminAnswer::Groups(vec![devs(), staff()]),
            format!("[{DEVS},{STAFF}]"),
        ),
        (
            AdminRequest::GroupAddChild {
                parent: s("staff"),
                child: s("devs"),
            },
            AdminAnswer::GroupChanged(GroupChanged::new(true, staff())),
            format!(r#"{{"changed":true,"group":{STAFF},"ok":true}}"#),
        ),
    ]
}

fn mfa_answers() -> Vec<Pinned> {
    vec![
        (
            AdminRequest::MfaTotpAdd {
                username: s("alice"),
                digits: 6,
                label: None,
            },
            AdminAnswer::TotpAdded(totp_added()),
            format!(
                r#"{{"algorithm":"SHA1","digits":6,"id":"319dbd0d-563a-4e04-a0e9-662891be90d0","period":30,"secret":"{SECRET}","uri":"{URI}"}}"#
            ),
        ),
        (
            AdminRequest::MfaStaticAdd {
                username: s("alice"),
                count: 2,
                label: None,
            },
            AdminAnswer::StaticAdded(static_added()),
            s(
                r#"{"id":"a05e1e5e-17df-4fb4-b539-013de0f46da2","tokens":["RQPRUE5Z6XZ7","87DHG3R86E2J"]}"#,
            ),
        ),
        (
            AdminRequest::MfaList {
                username: s("alice"),
            },
            AdminAnswer::Devices(vec![
                DeviceView {
                    id: s("319dbd0d-563a-4e04-a0e9-662891be90d0"),
                    label: s("authenticator"),
                    created: t(T0),
                    confirmed: true,
                    last_used: None,
                    kind: DeviceKindView::Totp { digits: 6 },
                },
                DeviceView {
                    id: s("a05e1e5e-17df-4fb4-b539-013de0f46da2"),
                    label: s("recovery tokens"),
                    created: t(T0),
                    confirmed: true,
                    last_used: None,
                    kind: DeviceKindView::Static { tokens_left: 2 },
                },
            ]),
            s(
                r#"[{"confirmed":true,"created":"2026-12-03T07:41:32Z","digits":6,"id":"319dbd0d-563a-4e04-a0e9-662891be90d0","kind":"totp","label":"authenticator"},{"confirmed":true,"created":"2026-12-03T07:41:32Z","id":"a05e1e5e-17df-4fb4-b539-013de0f46da2","kind":"static","label":"recovery tokens","tokens_left":2}]"#,
            ),
        ),
        (
            AdminRequest::MfaList { username: s("bob") },
            AdminAnswer::Devices(vec![]),
            s("[]"),
        ),
        (
            AdminRequest::MfaRemove {
                username: s("alice"),
                device: s("319dbd0d-563a-4e04-a0e9-662891be90d0"),
            },
            AdminAnswer::Removed(Removed::new(s("319dbd0d-563a-4e04-a0e9-662891be90d0"))),
            s(r#"{"changed":true,"id":"319dbd0d-563a-4e04-a0e9-662891be90d0","ok":true}"#),
        ),
    ]
}

fn app_password_and_policy_answers() -> Vec<Pinned> {
    vec![
        (
            AdminRequest::AppPasswordAdd {
                username: s("alice"),
                name: s("mail"),
                expires_in_secs: Some(3600),
            },
            AdminAnswer::AppPasswordAdded(app_password_added(t(T1))),
            format!(
                r#"{{"expires":"2026-12-03T08:41:32Z","id":"ffe943ca-6645-4bcf-8ef8-1bad79b99ec0","name":"mail","secret":"{APP_SECRET}"}}"#
            ),
        ),
        (
            AdminRequest::AppPasswordAdd {
                username: s("alice"),
                name: s("mail"),
                expires_in_secs: None,
            },
            AdminAnswer::AppPasswordAdded(app_password_added(None)),
            format!(
                r#"{{"expires":null,"id":"ffe943ca-6645-4bcf-8ef8-1bad79b99ec0","name":"mail","secret":"{APP_SECRET}"}}"#
            ),
        ),
        (
            AdminRequest::AppPasswordList {
                username: s("alice"),
            },
            AdminAnswer::AppPasswords(vec![
                AppPasswordView {
                    id: s("ef199e07-dd85-4e72-bd1e-6fd66f0d311a"),
                    name: s("cal"),
                    created: t(T0),
                    expires: None,
                    expired: false,
                    last_used: t(T1),
                    last_used_from: t("192.0.2.7"),
                },
                AppPasswordView {
                    id: s("ffe943ca-6645-4bcf-8ef8-1bad79b99ec0"),
                    name: s("mail"),
                    created: t(T0),
                    expires: t(T1),
                    expired: true,
                    last_used: None,
                    last_used_from: None,
                },
            ]),
            s(
                r#"[{"created":"2026-12-03T07:41:32Z","expired":false,"expires":null,"id":"ef199e07-dd85-4e72-bd1e-6fd66f0d311a","last_used":"2026-12-03T08:41:32Z","last_used_from":"192.0.2.7","name":"cal"},{"created":"2026-12-03T07:41:32Z","expired":true,"expires":"2026-12-03T08:41:32Z","id":"ffe943ca-6645-4bcf-8ef8-1bad79b99ec0","last_used":null,"last_used_from":null,"name":"mail"}]"#,
            ),
        ),
        (
            AdminRequest::AppPasswordRevoke {
                username: s("alice"),
                id: s("ffe943ca-6645-4bcf-8ef8-1bad79b99ec0"),
            },
            AdminAnswer::Removed(Removed::new(s("ffe943ca-6645-4bcf-8ef8-1bad79b99ec0"))),
            s(r#"{"changed":true,"id":"ffe943ca-6645-4bcf-8ef8-1bad79b99ec0","ok":true}"#),
        ),
        (
            AdminRequest::PolicyShow,
            AdminAnswer::Policy(policy(None)),
            format!(
                r#"{{"app_passwords":{{"config":"on","effective":"on","override":null}},"groups":[{{"app_passwords":null,"group":"staff","mfa":"required"}},{{"app_passwords":"off","group":"svc","mfa":null}}],"mfa":{{"config":"if-enrolled","effective":"if-enrolled","override":null}},"precedence":"{PRECEDENCE}"}}"#
            ),
        ),
        (
            AdminRequest::MfaPolicySet {
                group: None,
                policy: s("required"),
            },
            AdminAnswer::Policy(policy(t("required"))),
            format!(
                r#"{{"app_passwords":{{"config":"on","effective":"on","override":null}},"groups":[{{"app_passwords":null,"group":"staff","mfa":"required"}},{{"app_passwords":"off","group":"svc","mfa":null}}],"mfa":{{"config":"if-enrolled","effective":"if-enrolled","override":"required"}},"precedence":"{PRECEDENCE}"}}"#
            ),
        ),
    ]
}

#[test]
fn every_answer_keeps_its_wire_format() {
    let mut kinds = BTreeSet::new();
    for (req, answer, expected) in every_answer() {
        let doc = answer.to_json().expect("json");
        assert_eq!(
            serde_json::to_string(&doc).expect("text"),
            expected,
            "{}",
            req.op()
        );
        let back = answer_from_json(&req, doc).expect("read back");
        assert_eq!(back, answer, "{}", req.op());
        kinds.insert(format!("{:?}", discriminant(&answer)));
    }
    assert_eq!(kinds.len(), 13, "every kind of answer covered");
}

#[test]
fn a_document_that_does_not_fit_the_request_is_refused() {
    let doc = AdminAnswer::Group(staff()).to_json().expect("json");
    let req = AdminRequest::UserShow {
        username: s("staff"),
    };
    assert!(answer_from_json(&req, doc).is_err());
}

#[test]
fn secrets_never_show_in_debug() {
    for (_, answer, _) in every_answer() {
        let debug = format!("{answer:?}");
        for secret in [SECRET, APP_SECRET, TOKENS[0], TOKENS[1]] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
    let debug = format!("{:?}", totp_added());
    assert!(debug.contains("********"), "{debug}");
}
