//! Tests of the schema tables, lookups, descriptions and folding.

use super::*;

#[test]
fn lookup_by_name_alias_oid_any_case() {
    let cn = attribute("cn").unwrap();
    assert!(std::ptr::eq(cn, attribute("CommonName").unwrap()));
    assert!(std::ptr::eq(cn, attribute("2.5.4.3").unwrap()));
    assert!(std::ptr::eq(cn, attribute(" CN ").unwrap()));
    assert_eq!(attribute("USERID").unwrap().name, "uid");
    assert_eq!(attribute("rfc822mailbox").unwrap().name, "mail");
    assert_eq!(attribute("memberof").unwrap().name, "memberOf");
    assert_eq!(attribute("AK-ACTIVE").unwrap().name, "ak-active");
    assert!(attribute("cn;lang-en").is_none());
    assert!(attribute("nosuchattr").is_none());
    assert!(attribute("").is_none());
    assert!(attribute(&"x".repeat(500)).is_none());
    assert!(attribute("ćn").is_none());
}

#[test]
fn names_and_oids_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for at in attribute_types() {
        assert!(seen.insert(at.name.to_ascii_lowercase()), "{}", at.name);
        assert!(seen.insert(at.oid.to_string()), "{}", at.oid);
        for a in at.aliases {
            assert!(seen.insert(a.to_ascii_lowercase()), "{a}");
        }
        assert_eq!(at.operational, at.usage != Usage::UserApplications);
    }
    for oc in object_classes() {
        for name in oc.must.iter().chain(oc.may) {
            assert!(attribute(name).is_some(), "{} uses {name}", oc.name);
        }
        if let Some(sup) = oc.sup {
            assert!(object_class(sup).is_some());
        }
    }
}

#[test]
fn syntaxes_and_flags() {
    assert_eq!(attribute("uidNumber").unwrap().syntax, Syntax::Integer);
    assert_eq!(attribute("gidNumber").unwrap().syntax, Syntax::Integer);
    assert_eq!(attribute("member").unwrap().syntax, Syntax::Dn);
    assert_eq!(attribute("memberOf").unwrap().syntax, Syntax::Dn);
    assert_eq!(attribute("uniqueMember").unwrap().syntax, Syntax::Dn);
    assert_eq!(
        attribute("modifyTimestamp").unwrap().syntax,
        Syntax::GeneralizedTime
    );
    assert_eq!(attribute("ak-superuser").unwrap().syntax, Syntax::Boolean);
    assert_eq!(attribute("objectClass").unwrap().syntax, Syntax::Oid);
    assert!(!attribute("memberOf").unwrap().operational);
    assert!(attribute("entryUUID").unwrap().operational);
    assert!(attribute("namingContexts").unwrap().operational);
    assert!(!attribute("objectClass").unwrap().operational);
}

#[test]
fn settable() {
    assert_eq!(user_settable("surname").unwrap().name, "sn");
    assert_eq!(user_settable("loginshell").unwrap().name, "loginShell");
    assert_eq!(user_settable("mail").unwrap().name, "mail");
    for name in [
        "uidNumber",
        "memberOf",
        "entryUUID",
        "cn",
        "uid",
        "userPassword",
        "ak-active",
        "x",
    ] {
        assert!(user_settable(name).is_none(), "{name}");
    }
}

#[test]
fn descriptions() {
    assert_eq!(
        attribute("cn").unwrap().description(),
        "( 2.5.4.3 NAME ( 'cn' 'commonName' ) EQUALITY caseIgnoreMatch \
         SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )"
    );
    assert_eq!(
        attribute("entryUUID").unwrap().description(),
        "( 1.3.6.1.1.16.4 NAME 'entryUUID' EQUALITY uuidMatch ORDERING uuidOrderingMatch \
         SYNTAX 1.3.6.1.1.16.1 SINGLE-VALUE NO-USER-MODIFICATION USAGE directoryOperation )"
    );
    assert_eq!(
        object_class("posixaccount").unwrap().description(),
        "( 1.3.6.1.1.1.2.0 NAME 'posixAccount' SUP top AUXILIARY MUST ( cn $ uid $ \
         uidNumber $ gidNumber $ homeDirectory ) MAY ( userPassword $ loginShell $ gecos $ \
         description ) )"
    );
    assert_eq!(
        object_class("2.5.6.0").unwrap().description(),
        "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )"
    );
}

#[test]
fn folding() {
    assert_eq!(fold_case_ignore_string("  Foo   BAR\tbaz "), "foo bar baz");
    assert_eq!(fold_spaces(" A  B ").collect::<String>(), "A B");
    assert_eq!(matching_rule_syntax("2.5.13.14"), Some(Syntax::Integer));
    assert_eq!(
        matching_rule_syntax("CASEEXACTMATCH"),
        Some(Syntax::CaseExact)
    );
    assert_eq!(matching_rule_syntax("1.2.3"), None);
}

#[test]
fn the_ascii_shortcut_folds_like_the_general_path() {
    for s in [
        "Alice",
        "USER00123",
        "Alice.Smith@Example.COM",
        "posixAccount",
        "~!#$%^&*()_+{}|:<>?",
        "",
        " Alice",
        "a\tb",
        "Stra\u{df}e",
        "\u{130}stanbul",
    ] {
        assert_eq!(
            fold_case_ignore_string(s),
            fold_case_ignore(s).collect::<String>(),
            "{s:?}"
        );
    }
}
