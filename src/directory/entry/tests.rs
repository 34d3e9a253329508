//! Tests of entry building and attribute selection.

use super::*;
use crate::domain::attrs::Attrs;
use crate::store::model::{Group, GroupId, User, UserId};
use uuid::Uuid;

fn base() -> Dn {
    Dn::parse("dc=example,dc=com").unwrap()
}

pub(crate) fn alice() -> User {
    User {
        id: UserId(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
        username: "alice".into(),
        full_name: Some("Alice Van Der Berg".into()),
        email: Some("alice@example.com".into()),
        uid_number: 2001,
        gid_number: 4000,
        disabled: false,
        attrs: Attrs::new(),
        created: 1_700_000_000,
        modified: 1_700_000_100,
        pwd_changed: Some(1_700_000_050),
        cred_generation: 3,
    }
}

fn group(name: &str, gid: u32) -> Group {
    Group {
        id: GroupId(Uuid::from_u128(u128::from(gid))),
        name: name.into(),
        gid_number: gid,
        description: None,
        created: 0,
        modified: 86_400,
    }
}

#[test]
fn wants_name_agrees_with_the_schema_for_every_spelling() {
    let lists: [&[&str]; 4] = [
        &["uid", "MAIL", " cn "],
        &["2.5.4.3", "memberof", "surname"],
        &["*"],
        &["+", "uid"],
    ];
    for list in lists {
        let requested: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        let wanted = Wanted::selected(&requested);
        for ty in schema::attribute_types() {
            let mut spellings = vec![
                ty.name.to_string(),
                ty.name.to_ascii_uppercase(),
                format!(" {} ", ty.name),
                ty.oid.to_string(),
            ];
            spellings.extend(ty.aliases.iter().map(|a| a.to_ascii_lowercase()));
            for name in spellings {
                assert_eq!(
                    wanted.wants_name(&name),
                    wanted.wants(ty),
                    "{name:?} for {list:?}"
                );
            }
        }
        assert!(!wanted.wants_name("noSuchAttribute"));
    }
}

#[test]
fn a_partly_built_entry_selects_like_the_full_one() {
    let mut u = alice();
    u.attrs.insert("telephoneNumber".into(), "+1 555".into());
    u.attrs.insert("givenName".into(), "Alice".into());
    let groups = [group("admins", 4000), group("staff", 4001)];
    let full = user_entry(&base(), &u, &groups, true);
    let requests: &[&[&str]] = &[
        &[],
        &["*"],
        &["+"],
        &["*", "+"],
        &["1.1"],
        &["cn", "mail", "uidNumber"],
        &["memberOf", "ak-superuser"],
        &["CN", "2.5.4.20", "entryDN", "dn"],
        &["createTimestamp", "pwdChangedTime", "entryUUID"],
        &["objectClass", "homeDirectory", "loginShell", "sn"],
        &["nosuchattribute"],
        // An extra attribute named, alone or among computed ones; and an
        // NSS lookup's list, which names none.
        &["telephoneNumber"],
        &["TelephoneNumber", "uid", "entryUUID"],
        &[
            "objectClass",
            "uid",
            "userPassword",
            "uidNumber",
            "gidNumber",
            "cn",
            "displayName",
            "homeDirectory",
            "loginShell",
        ],
    ];
    for req in requests {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        let wanted = Wanted::selected(&req);
        let part = user_entry_for(&base(), &u, &groups, true, &wanted);
        for types_only in [false, true] {
            assert_eq!(
                part.select(&req, types_only),
                full.select(&req, types_only),
                "{req:?}"
            );
            assert_eq!(
                part.clone().into_selected(&req, types_only),
                full.select(&req, types_only),
                "{req:?}"
            );
        }
    }
}

#[test]
fn a_names_only_entry_selects_like_the_full_one() {
    let u = alice();
    let full = user_entry(&base(), &u, &[], false);
    for req in [
        &["cn"][..],
        &["uid", "dn"],
        &["1.1"],
        &["CN", "2.5.4.3", "uid"],
    ] {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        let wanted = Wanted::selected(&req);
        assert!(wanted.only_names(), "{req:?}");
        let names = user_name_entry(&base(), &u.username, &wanted);
        assert_eq!(names.select(&req, false), full.select(&req, false));
    }
    for req in [
        &[][..],
        &["*"],
        &["cn", "mail"],
        &["+"],
        &["cn", "ak-active"],
        &["cn", "entryDN"],
    ] {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        assert!(!Wanted::selected(&req).only_names(), "{req:?}");
    }
}

#[test]
fn member_dns_are_spelled_as_the_dn_type_spells_them() {
    let names = [
        "alice",
        "Bob Smith",
        "a,b",
        "a+b",
        " lead",
        "trail ",
        "#hash",
        "q\"uote",
        "semi;colon",
        "<angle>",
        "équipe",
    ];
    let users_ou = tree::users_ou(&base()).to_string();
    for n in names {
        assert_eq!(
            child_dn_string(n, &users_ou),
            tree::user_dn(&base(), n).to_string(),
            "{n}"
        );
    }
    assert_eq!(child_dn_string("x", ""), "cn=x");
}

fn one(e: &Entry, name: &str) -> String {
    match e.get(name) {
        Some([v]) => v.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

fn sel(e: &Entry, req: &[&str], types_only: bool) -> Vec<(String, Vec<String>)> {
    let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
    e.select(&req, types_only)
}

fn names(v: &[(String, Vec<String>)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn user_mapping() {
    let groups = [group("admins", 4000), group("ldap-search", 4001)];
    let e = user_entry(&base(), &alice(), &groups, true);
    assert_eq!(e.dn.to_string(), "cn=alice,ou=users,dc=example,dc=com");
    assert_eq!(
        e.get("objectClass").unwrap(),
        [
            "top",
            "person",
            "organizationalPerson",
            "inetOrgPerson",
            "posixAccount"
        ]
    );
    assert!(e.has_object_class("inetorgperson"));
    assert!(e.has_object_class("1.3.6.1.1.1.2.0"));
    assert!(!e.has_object_class("groupOfNames"));
    assert_eq!(one(&e, "cn"), "alice");
    assert_eq!(one(&e, "uid"), "alice");
    assert_eq!(one(&e, "sn"), "Berg");
    assert_eq!(one(&e, "displayName"), "Alice Van Der Berg");
    assert_eq!(one(&e, "mail"), "alice@example.com");
    assert_eq!(
        e.get("memberOf").unwrap(),
        [
            "cn=admins,ou=groups,dc=example,dc=com",
            "cn=ldap-search,ou=groups,dc=example,dc=com"
        ]
    );
    assert_eq!(one(&e, "uidNumber"), "2001");
    assert_eq!(one(&e, "gidNumber"), "4000");
    assert_eq!(one(&e, "homeDirectory"), "/home/alice");
    assert_eq!(one(&e, "loginShell"), "/bin/bash");
    assert_eq!(one(&e, "ak-active"), "TRUE");
    assert_eq!(one(&e, "ak-superuser"), "TRUE");
    assert_eq!(one(&e, "entryUUID"), "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(one(&e, "createTimestamp"), "20231114221320Z");
    assert_eq!(one(&e, "modifyTimestamp"), "20231114221500Z");
    assert_eq!(one(&e, "pwdChangedTime"), "20231114221410Z");
    assert_eq!(one(&e, "entryDN"), "cn=alice,ou=users,dc=example,dc=com");
    assert_eq!(one(&e, "structuralObjectClass"), "inetOrgPerson");
    assert_eq!(one(&e, "hasSubordinates"), "FALSE");
    assert_eq!(one(&e, "subschemaSubentry"), "cn=subschema");
    assert!(e.get("givenName").is_none());
    assert!(e.get("userPassword").is_none());
}

#[test]
fn user_mapping_fallbacks_and_attrs() {
    let mut u = alice();
    u.full_name = None;
    u.email = None;
    u.disabled = true;
    u.pwd_changed = None;
    let e = user_entry(&base(), &u, &[], false);
    assert_eq!(one(&e, "sn"), "alice");
    assert!(e.get("displayName").is_none());
    assert!(e.get("mail").is_none());
    assert!(e.get("memberOf").is_none());
    assert!(e.get("pwdChangedTime").is_none());
    assert_eq!(one(&e, "ak-active"), "FALSE");
    assert_eq!(one(&e, "ak-superuser"), "FALSE");

    let mut u = alice();
    for (k, v) in [
        ("sn", "Smith"),
        ("givenName", "Al"),
        ("loginShell", "/bin/zsh"),
        ("homeDirectory", "/srv/alice"),
        ("telephoneNumber", "+1 555 0100"),
        ("title", "Engineer"),
        ("gecos", "Alice,,,"),
        // Not allowed to override computed or operational values, and
        // never a password.
        ("uidNumber", "0"),
        ("ak-superuser", "TRUE"),
        ("memberOf", "cn=admins,ou=groups,dc=example,dc=com"),
        ("entryUUID", "x"),
        ("userPassword", "secret"),
        ("unknownAttr", "x"),
    ] {
        u.attrs.insert(k.into(), v.into());
    }
    let e = user_entry(&base(), &u, &[], false);
    assert_eq!(one(&e, "sn"), "Smith");
    assert_eq!(one(&e, "givenName"), "Al");
    assert_eq!(one(&e, "loginShell"), "/bin/zsh");
    assert_eq!(one(&e, "homeDirectory"), "/srv/alice");
    assert_eq!(one(&e, "telephoneNumber"), "+1 555 0100");
    assert_eq!(one(&e, "title"), "Engineer");
    assert_eq!(one(&e, "gecos"), "Alice,,,");
    assert_eq!(one(&e, "uidNumber"), "2001");
    assert_eq!(one(&e, "ak-superuser"), "FALSE");
    assert!(e.get("memberOf").is_none());
    assert_eq!(one(&e, "entryUUID"), "01234567-89ab-cdef-0123-456789abcdef");
    assert!(e.get("userPassword").is_none());
    for a in &e.attrs {
        assert!(
            !a.values.iter().any(|v| v.contains("secret")),
            "{}",
            a.ty.name
        );
    }
    // Alias keys resolve too.
    let mut u = alice();
    u.attrs.insert("surname".into(), "Jones".into());
    assert_eq!(one(&user_entry(&base(), &u, &[], false), "sn"), "Jones");
}

#[test]
fn group_mapping() {
    let mut g = group("devs", 4002);
    g.description = Some("Developers".into());
    let mut bob = alice();
    bob.username = "bob".into();
    let e = group_entry(
        &base(),
        &g,
        &[alice(), bob],
        &[group("interns", 4003)],
        &[group("staff", 4004)],
    );
    assert_eq!(e.dn.to_string(), "cn=devs,ou=groups,dc=example,dc=com");
    assert_eq!(
        e.get("objectClass").unwrap(),
        ["top", "groupOfNames", "posixGroup"]
    );
    assert_eq!(one(&e, "cn"), "devs");
    assert_eq!(
        e.get("member").unwrap(),
        [
            "cn=alice,ou=users,dc=example,dc=com",
            "cn=bob,ou=users,dc=example,dc=com",
            "cn=interns,ou=groups,dc=example,dc=com"
        ]
    );
    assert_eq!(e.get("memberUid").unwrap(), ["alice", "bob"]);
    assert_eq!(one(&e, "gidNumber"), "4002");
    assert_eq!(
        e.get("memberOf").unwrap(),
        ["cn=staff,ou=groups,dc=example,dc=com"]
    );
    assert_eq!(one(&e, "description"), "Developers");
    assert_eq!(one(&e, "createTimestamp"), "19700101000000Z");
    assert_eq!(one(&e, "modifyTimestamp"), "19700102000000Z");
    assert_eq!(one(&e, "structuralObjectClass"), "groupOfNames");
    assert_eq!(one(&e, "entryUUID"), "00000000-0000-0000-0000-000000000fa2");

    let empty = group_entry(&base(), &group("empty", 4005), &[], &[], &[]);
    assert!(empty.get("member").is_none());
    assert!(empty.get("memberUid").is_none());
    assert!(empty.get("description").is_none());
}

#[test]
fn containers() {
    let b = base_entry(&base());
    assert_eq!(b.get("objectClass").unwrap(), ["top", "domain", "dcObject"]);
    assert_eq!(one(&b, "dc"), "example");
    assert_eq!(one(&b, "hasSubordinates"), "TRUE");
    assert_eq!(one(&b, "structuralObjectClass"), "domain");
    let o = base_entry(&Dn::parse("o=Acme").unwrap());
    assert_eq!(o.get("objectClass").unwrap(), ["top", "organization"]);
    assert_eq!(one(&o, "o"), "Acme");
    let ou = base_entry(&Dn::parse("ou=Dir,o=Acme").unwrap());
    assert_eq!(
        ou.get("objectClass").unwrap(),
        ["top", "organizationalUnit"]
    );
    let other = base_entry(&Dn::parse("cn=dir").unwrap());
    assert_eq!(
        other.get("objectClass").unwrap(),
        ["top", "extensibleObject"]
    );
    assert_eq!(one(&other, "cn"), "dir");
    assert!(other.get("structuralObjectClass").is_none());

    let u = users_ou_entry(&base());
    assert_eq!(u.dn.to_string(), "ou=users,dc=example,dc=com");
    assert_eq!(one(&u, "ou"), "users");
    assert_eq!(u.get("objectClass").unwrap(), ["top", "organizationalUnit"]);
    assert_eq!(one(&u, "hasSubordinates"), "TRUE");
    let g = groups_ou_entry(&base());
    assert_eq!(g.dn.to_string(), "ou=groups,dc=example,dc=com");
    assert_eq!(one(&g, "ou"), "groups");
}

#[test]
fn root_dse_selection() {
    let e = root_dse(
        &base(),
        &["1.2.840.113556.1.4.319"],
        &["1.3.6.1.4.1.4203.1.11.3"],
        "0.1.0",
    );
    assert!(e.dn.is_root());
    // No attribute list: only objectClass, as OpenLDAP does.
    assert_eq!(names(&sel(&e, &[], false)), ["objectClass"]);
    let plus = sel(&e, &["+"], false);
    assert_eq!(
        names(&plus),
        [
            "namingContexts",
            "defaultNamingContext",
            "supportedLDAPVersion",
            "supportedControl",
            "supportedExtension",
            "supportedFeatures",
            "subschemaSubentry",
            "vendorName",
            "vendorVersion"
        ]
    );
    assert_eq!(plus[0].1, ["dc=example,dc=com"]);
    assert_eq!(plus[2].1, ["3"]);
    assert_eq!(plus[7].1, ["Portcullis"]);
    assert_eq!(plus[8].1, ["0.1.0"]);
    let named = sel(&e, &["namingcontexts", "supportedLDAPVersion"], false);
    assert_eq!(names(&named), ["namingContexts", "supportedLDAPVersion"]);
    // No controls: the attribute is absent rather than empty.
    let bare = root_dse(&base(), &[], &[], "0");
    assert!(bare.get("supportedControl").is_none());
}

#[test]
fn subschema() {
    let e = subschema_entry();
    assert_eq!(e.dn.to_string(), "cn=subschema");
    assert_eq!(names(&sel(&e, &[], false)), ["objectClass", "cn"]);
    let types = e.get("attributeTypes").unwrap();
    assert_eq!(types.len(), schema::attribute_types().len());
    assert!(types
        .iter()
        .any(|t| t.starts_with("( 2.5.4.3 NAME ( 'cn' 'commonName' )")));
    assert!(types
        .iter()
        .any(|t| t.contains("NAME 'memberOf'") && !t.contains("USAGE")));
    assert!(types
        .iter()
        .any(|t| t.contains("NAME 'namingContexts'") && t.contains("USAGE dSAOperation")));
    let classes = e.get("objectClasses").unwrap();
    for c in [
        "top",
        "person",
        "organizationalPerson",
        "inetOrgPerson",
        "posixAccount",
        "groupOfNames",
        "posixGroup",
        "organizationalUnit",
        "domain",
        "dcObject",
        "organization",
        "subschema",
        "subentry",
        "extensibleObject",
    ] {
        let needle = format!("NAME '{c}'");
        assert!(classes.iter().any(|d| d.contains(&needle)), "{c}");
    }
    assert!(e.get("ldapSyntaxes").is_some());
    assert!(e.get("matchingRules").is_some());
    // Directory Studio reads these three as well.
    let uses = e.get("matchingRuleUse").expect("matchingRuleUse");
    assert!(uses.iter().any(
        |u| u.starts_with("( 2.5.13.2 NAME 'caseIgnoreMatch' APPLIES (") && u.contains(" $ uid ")
    ));
    assert!(e.get("createTimestamp").is_some());
    assert!(e.get("modifyTimestamp").is_some());
}

#[test]
fn select_rules() {
    let e = user_entry(&base(), &alice(), &[group("admins", 4000)], false);
    let all = names(&sel(&e, &[], false)).join(",");
    assert_eq!(
        all,
        "objectClass,cn,uid,sn,displayName,mail,memberOf,uidNumber,gidNumber,\
         homeDirectory,loginShell,ak-active,ak-superuser"
    );
    assert_eq!(names(&sel(&e, &["*"], false)).join(","), all);
    let ops = names(&sel(&e, &["+"], false)).join(",");
    assert_eq!(
        ops,
        "entryUUID,createTimestamp,modifyTimestamp,pwdChangedTime,entryDN,\
         structuralObjectClass,hasSubordinates,subschemaSubentry"
    );
    assert_eq!(sel(&e, &["*", "+"], false).len(), e.attrs.len());
    assert!(sel(&e, &["1.1"], false).is_empty());
    assert_eq!(names(&sel(&e, &["1.1", "cn"], false)), ["cn"]);
    // Names, aliases, OIDs and case; canonical names back; entry order.
    assert_eq!(
        names(&sel(
            &e,
            &["MAIL", "commonName", "2.5.4.4", "nosuch", "cn;x"],
            false
        )),
        ["cn", "sn", "mail"]
    );
    assert_eq!(names(&sel(&e, &["surname", "sn"], false)), ["sn"]);
    assert_eq!(names(&sel(&e, &["*", "entryUUID"], false)).len(), 14);
    // entryDN gives the DN; `dn` is no attribute (an attribute `dn` would
    // make LDIF output invalid): it is ignored like any unknown name.
    let dn = sel(&e, &["dn", "entryDN"], false);
    assert_eq!(
        dn,
        [(
            "entryDN".to_string(),
            vec!["cn=alice,ou=users,dc=example,dc=com".to_string()]
        )]
    );
    assert!(sel(&e, &["dn"], false).is_empty());
    assert!(sel(&e, &["DN"], true).is_empty());
    assert_eq!(names(&sel(&e, &["dn", "cn"], false)), ["cn"]);
    // entryDN is virtual even where not stored.
    let mut bare = Entry::new(Dn::parse("cn=x").unwrap());
    bare.push_one("cn", "x");
    assert_eq!(sel(&bare, &["entrydn"], false)[0].1, ["cn=x"]);
    // typesOnly.
    let t = sel(&e, &["cn", "memberOf"], true);
    assert_eq!(
        t,
        [("cn".to_string(), vec![]), ("memberOf".to_string(), vec![])]
    );
}

#[test]
fn push_rules() {
    let mut e = Entry::new(Dn::root());
    e.push("commonName", vec!["a".into()]);
    e.push("CN", vec!["b".into(), "a".into()]);
    e.push("nosuch", vec!["x".into()]);
    e.push("userPassword", vec!["secret".into()]);
    e.push("sn", vec![]);
    assert_eq!(e.attrs.len(), 1);
    assert_eq!(e.get("2.5.4.3").unwrap(), ["a", "b"]);
}

#[test]
fn time_format() {
    assert_eq!(generalized_time(0).unwrap(), "19700101000000Z");
    assert_eq!(generalized_time(951_782_400).unwrap(), "20000229000000Z");
    assert!(generalized_time(i64::MAX).is_none());
}
