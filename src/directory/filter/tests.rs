//! Tests of filter conversion and matching.

use super::matching::parse_generalized_time;
use super::*;
use crate::directory::entry::{group_entry, user_entry};
use crate::domain::attrs::Attrs;
use crate::store::model::{Group, GroupId, User, UserId};
use ldap3_proto::parse_ldap_filter_str;
use ldap3_proto::proto::LdapFilter;
use uuid::Uuid;

fn base() -> Dn {
    Dn::parse("dc=example,dc=com").unwrap()
}

fn user(name: &str, uid: u32) -> User {
    User {
        id: UserId(Uuid::from_u128(u128::from(uid))),
        username: name.into(),
        full_name: Some(format!("{name} Van  Berg")),
        email: Some(format!("{name}@Example.com")),
        uid_number: uid,
        gid_number: 4000,
        disabled: uid % 2 == 1,
        attrs: Attrs::new(),
        created: 1_700_000_000,
        modified: 1_700_000_100,
        pwd_changed: None,
        cred_generation: 0,
    }
}

fn group(name: &str) -> Group {
    Group {
        id: GroupId(Uuid::from_u128(7)),
        name: name.into(),
        gid_number: 4000,
        description: None,
        created: 0,
        modified: 0,
    }
}

fn alice() -> Entry {
    user_entry(&base(), &user("alice", 2000), &[group("Admins")], false)
}

fn parse(s: &str) -> Filter {
    Filter::from_ldap(&parse_ldap_filter_str(s).unwrap_or_else(|e| panic!("{s}: {e:?}")))
}

fn eval(s: &str, e: &Entry) -> Truth {
    parse(s).evaluate(e, &NoChain)
}

fn is(s: &str, e: &Entry) -> bool {
    parse(s).matches(e, &NoChain)
}

#[test]
fn case_insensitive_strings() {
    let e = alice();
    assert!(is("(cn=alice)", &e));
    assert!(is("(CN=ALICE)", &e));
    assert!(is("(commonName=Alice)", &e));
    assert!(is("(uid= alice )", &e));
    assert!(is("(mail=ALICE@example.COM)", &e));
    assert!(is("(displayName=\"alice van berg\")", &e));
    assert!(is("(displayName=\"ALICE   VAN BERG\")", &e));
    assert!(!is("(cn=bob)", &e));
    assert!(is("(cn~=ALICE)", &e));
    assert!(is("(objectClass=inetorgperson)", &e));
    assert!(is("(objectClass=2.16.840.1.113730.3.2.2)", &e));
    assert!(is("(objectclass=POSIXACCOUNT)", &e));
    assert!(!is("(objectClass=groupOfNames)", &e));
}

#[test]
fn integers_compare_numerically() {
    let entries: Vec<Entry> = [999, 2000, 2005, 10000]
        .iter()
        .map(|n| user_entry(&base(), &user(&format!("u{n}"), *n), &[], false))
        .collect();
    let count = |f: &str| entries.iter().filter(|e| is(f, e)).count();
    // Lexically "999" > "2005" and "10000" < "2005"; numerically not.
    assert_eq!(count("(uidNumber>=2005)"), 2);
    assert_eq!(count("(uidNumber<=2000)"), 2);
    assert_eq!(count("(uidNumber<=999)"), 1);
    assert_eq!(count("(uidNumber>=1000)"), 3);
    assert_eq!(count("(uidNumber=02005)"), 1);
    assert_eq!(count("(uidNumber=2005)"), 1);
    assert_eq!(count("(&(uidNumber>=1000)(uidNumber<=9999))"), 2);
    assert_eq!(count("(gidNumber=4000)"), 4);
    // A non-numeric assertion is Undefined, and so is its negation.
    assert_eq!(eval("(uidNumber>=abc)", &entries[0]), Truth::Undefined);
    assert_eq!(eval("(uidNumber=12a)", &entries[0]), Truth::Undefined);
    assert_eq!(count("(!(uidNumber=abc))"), 0);
    // No ordering rule for strings.
    assert_eq!(eval("(cn>=a)", &entries[0]), Truth::Undefined);
    // Substring on an integer is Undefined.
    assert_eq!(eval("(uidNumber=20*)", &entries[1]), Truth::Undefined);
}

#[test]
fn dns_compare_normalised() {
    let e = alice();
    assert!(is(
        "(memberOf=\"cn=admins,ou=groups,dc=example,dc=com\")",
        &e
    ));
    assert!(is(
        "(memberOf=\"CN=Admins, OU=Groups, DC=Example, DC=Com\")",
        &e
    ));
    assert!(is(
        "(memberOf=\"2.5.4.3=admins,ou=groups,dc=example,dc=com\")",
        &e
    ));
    assert!(!is(
        "(memberOf=\"cn=users,ou=groups,dc=example,dc=com\")",
        &e
    ));
    assert_eq!(eval("(memberOf=\"not a dn\")", &e), Truth::Undefined);
    assert!(is("(entryDN=\"CN=alice,ou=users,dc=example,dc=com\")", &e));
    let g = group_entry(&base(), &group("devs"), &[user("Alice", 2000)], &[], &[]);
    assert!(is("(member=\"cn=ALICE,ou=users,dc=example,dc=com\")", &g));
    assert!(is("(memberUid=alice)", &g));
}

#[test]
fn substrings() {
    let e = alice();
    assert!(is("(cn=ali*)", &e));
    assert!(is("(cn=*LIC*)", &e));
    assert!(is("(cn=*ce)", &e));
    assert!(is("(cn=a*i*e)", &e));
    assert!(is("(cn=a*l*i*c*e)", &e));
    assert!(!is("(cn=a*e*l)", &e));
    // initial and final must not overlap.
    assert!(!is("(cn=alic*ice)", &e));
    assert!(is("(displayName=\"alice van*\")", &e));
    assert!(is("(displayName=\"*van   berg\")", &e));
    assert!(is("(mail=*@EXAMPLE.com)", &e));
    assert!(!is("(mail=*@example.org)", &e));
    assert_eq!(eval("(memberOf=\"cn=*\")", &e), Truth::Undefined);
    assert_eq!(eval("(nosuch=a*)", &e), Truth::Undefined);
}

#[test]
fn presence_and_unknowns() {
    let e = alice();
    assert!(is("(objectClass=*)", &e));
    assert!(is("(mail=*)", &e));
    assert!(is("(entryDN=*)", &e));
    assert!(!is("(givenName=*)", &e));
    assert!(!is("(userPassword=*)", &e));
    // Unknown attributes are Undefined: neither they nor their
    // negation match.
    assert_eq!(eval("(nosuch=*)", &e), Truth::Undefined);
    assert!(!is("(nosuch=x)", &e));
    assert!(!is("(!(nosuch=x))", &e));
    assert!(is("(!(cn=bob))", &e));
    assert!(!is("(!(cn=alice))", &e));
}

#[test]
fn and_or_three_valued() {
    let e = alice();
    assert_eq!(eval("(|(nosuch=x)(cn=alice))", &e), Truth::True);
    assert_eq!(eval("(|(nosuch=x)(cn=bob))", &e), Truth::Undefined);
    assert_eq!(eval("(!(|(nosuch=x)(cn=bob)))", &e), Truth::Undefined);
    assert_eq!(eval("(&(nosuch=x)(cn=alice))", &e), Truth::Undefined);
    assert_eq!(eval("(&(nosuch=x)(cn=bob))", &e), Truth::False);
    assert!(is("(!(&(nosuch=x)(cn=bob)))", &e));
    assert!(is("(&(objectClass=person)(|(uid=alice)(mail=bob@x)))", &e));
    assert!(!is("(&(cn=alice)(cn=bob))", &e));
    assert_eq!(Filter::And(vec![]).evaluate(&e, &NoChain), Truth::True);
    assert_eq!(Filter::Or(vec![]).evaluate(&e, &NoChain), Truth::False);
}

#[test]
fn booleans() {
    let e = alice(); // uid 2000 is even: active
    assert!(is("(ak-active=true)", &e));
    assert!(is("(ak-active=TRUE)", &e));
    assert!(is("(ak-superuser=FALSE)", &e));
    assert!(!is("(ak-superuser=TRUE)", &e));
    assert_eq!(eval("(ak-active=yes)", &e), Truth::Undefined);
    let disabled = user_entry(&base(), &user("bob", 2001), &[], true);
    assert!(is("(ak-active=false)", &disabled));
    assert!(is("(ak-superuser=true)", &disabled));
}

#[test]
fn times() {
    // createTimestamp is 20231114221320Z.
    let e = alice();
    assert!(is("(createTimestamp=20231114221320Z)", &e));
    assert!(is("(createTimestamp>=20230101000000Z)", &e));
    assert!(is("(createTimestamp<=20231114221320Z)", &e));
    assert!(!is("(createTimestamp>=20231114221321Z)", &e));
    assert!(is("(createTimestamp=20231114231320+0100)", &e));
    assert!(is("(createTimestamp=20231114211320-01)", &e));
    assert!(is("(createTimestamp=20231114221320.000Z)", &e));
    assert!(is("(createTimestamp<=20231114221320.5Z)", &e));
    assert!(!is("(createTimestamp>=20231114221320,5Z)", &e));
    assert!(is("(createTimestamp>=2023111422Z)", &e));
    assert!(is("(createTimestamp<=2023111422.25Z)", &e)); // 22:15
    assert!(!is("(createTimestamp<=2023111422.2Z)", &e)); // 22:12
    assert!(is("(modifyTimestamp>=202311142214Z)", &e));
    assert_eq!(eval("(createTimestamp>=2023)", &e), Truth::Undefined);
    assert_eq!(
        eval("(createTimestamp>=20231340000000Z)", &e),
        Truth::Undefined
    );
    assert_eq!(
        eval("(createTimestamp>=20230230000000Z)", &e),
        Truth::Undefined
    );
    assert_eq!(parse_generalized_time("19700101000000Z"), Some(0));
    assert_eq!(
        parse_generalized_time("19700101000001.5Z"),
        Some(1_500_000_000)
    );
    assert_eq!(parse_generalized_time("19691231230000-0100"), Some(0));
    assert_eq!(parse_generalized_time("1970010100Zjunk"), None);
}

#[test]
fn extensible_match() {
    let e = alice();
    assert!(is("(cn:caseExactMatch:=alice)", &e));
    assert!(!is("(cn:caseExactMatch:=Alice)", &e));
    assert!(is("(cn:2.5.13.2:=ALICE)", &e));
    assert!(is("(cn:=ALICE)", &e));
    assert!(is("(uidNumber:integerMatch:=02000)", &e));
    assert!(is(
        "(memberOf:distinguishedNameMatch:=\"CN=admins,OU=groups,DC=example,DC=com\")",
        &e
    ));
    assert!(is("(ak-active:booleanMatch:=true)", &e));
    // dnAttributes: the AVAs of the entry's DN count too.
    assert!(!is("(ou:=users)", &e));
    assert!(is("(ou:dn:=users)", &e));
    assert!(is("(ou:dn:caseIgnoreMatch:=USERS)", &e));
    assert!(is("(:dn:2.5.13.2:=users)", &e));
    assert!(!is("(:2.5.13.2:=users)", &e));
    assert!(is("(:caseIgnoreMatch:=\"alice van berg\")", &e));
    // Unknown rule, unknown type, incompatible rule: Undefined.
    assert_eq!(eval("(cn:1.2.3.4:=alice)", &e), Truth::Undefined);
    assert_eq!(eval("(nosuch:=alice)", &e), Truth::Undefined);
    assert_eq!(
        eval("(uidNumber:caseIgnoreMatch:=2000)", &e),
        Truth::Undefined
    );
}

struct Chain;
impl InChain for Chain {
    fn member_of_in_chain(&self, entry: &Entry, group: &Dn) -> bool {
        entry.dn.first_value("cn") == Some("alice")
            && group == &Dn::parse("cn=staff,ou=groups,dc=example,dc=com").unwrap()
    }
    fn member_in_chain(&self, entry: &Entry, member: &Dn) -> bool {
        entry.dn.first_value("cn") == Some("staff") && member.first_value("cn") == Some("alice")
    }
}

#[test]
fn in_chain() {
    let f = parse("(memberOf:1.2.840.113556.1.4.1941:=\"CN=Staff,ou=groups,dc=example,dc=com\")");
    assert!(matches!(&f, Filter::InChain { attr, .. } if attr.name == "memberOf"));
    let e = alice();
    assert!(!f.matches(&e, &NoChain));
    assert!(f.matches(&e, &Chain));
    let staff = group_entry(&base(), &group("staff"), &[], &[], &[]);
    let m = parse("(member:1.2.840.113556.1.4.1941:=\"cn=alice,ou=users,dc=example,dc=com\")");
    assert!(m.matches(&staff, &Chain));
    assert!(!m.matches(&e, &Chain));
    // Only member/memberOf, and only with a DN.
    assert!(matches!(
        parse("(cn:1.2.840.113556.1.4.1941:=x)"),
        Filter::Undefined
    ));
    assert!(matches!(
        parse("(memberOf:1.2.840.113556.1.4.1941:=\"not a dn\")"),
        Filter::Undefined
    ));
}

#[test]
fn depth_is_bounded() {
    let leaf = LdapFilter::Equality("cn".into(), "alice".into());
    let nest = |n: usize| {
        let mut f = leaf.clone();
        for _ in 0..n {
            f = LdapFilter::Not(Box::new(f));
        }
        f
    };
    let e = alice();
    // 62 NOTs: within the bound, evaluates normally.
    assert!(Filter::from_ldap(&nest(62)).matches(&e, &NoChain));
    // Far beyond it: Undefined, never a match, even negated an even
    // number of times.
    for n in [64, 65, 1000] {
        let f = Filter::from_ldap(&nest(n));
        assert_eq!(f.evaluate(&e, &NoChain), Truth::Undefined, "{n}");
    }
}

#[test]
fn conversion_resolves_types() {
    match parse("(CommonName=X)") {
        Filter::Equality(ty, v) => {
            assert_eq!(ty.name, "cn");
            assert_eq!(v.raw, "X");
        }
        other => panic!("{other:?}"),
    }
    let tagged = LdapFilter::Equality("cn;lang-en".into(), "x".into());
    assert!(matches!(Filter::from_ldap(&tagged), Filter::Undefined));
    assert!(matches!(parse("(nosuch=x)"), Filter::Undefined));
    match parse("(cn=\" Jo  HN*Sm ith*x \")") {
        Filter::Substring {
            initial,
            any,
            final_,
            ..
        } => {
            assert_eq!(initial.as_deref(), Some("jo hn"));
            assert_eq!(any, ["sm ith"]);
            assert_eq!(final_.as_deref(), Some("x"));
        }
        other => panic!("{other:?}"),
    }
}
