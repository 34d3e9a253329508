//! Real clients against the real server (issue 6): the searches that
//! Nextcloud, Gitea, Grafana, Authelia, Jellyfin and Synology DSM send with
//! their documented default settings; what Apache Directory Studio reads
//! at connect; python-ldap and Python's ldap3; nslcd and SSSD as local
//! daemons queried through `getent` (docs/clients/ has the configurations).
//!
//! nslcd and SSSD use fixed system paths (/etc/nslcd.conf, /run/nslcd,
//! /var/lib/sss): those tests run one at a time under `SYSTEM`, need root,
//! and skip with a message when the daemon is not installed. Neither
//! touches /etc/nsswitch.conf: `getent -s SERVICE` names the NSS module.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ldap3::{LdapConn, Scope, SearchEntry};

use crate::harness::{group_dn, search, user_dn, Server, BASE};

/// The search account's password (member of `ldap-search`).
const SVC_PW: &str = "svc-Secret-1";
const ALICE_PW: &str = "alice-Secret-1";
const BOB_PW: &str = "bob;Secret;1";
const CAROL_PW: &str = "carol-Secret-1";

/// Serialises the tests that write system-global files and sockets.
static SYSTEM: Mutex<()> = Mutex::new(());

/// Users: svc (ldap-search), alice (staff, media), bob (ops, media-admins),
/// carol (no group, no mail). Groups: ops is a child of staff.
fn seed(s: &Server) {
    s.add_user("svc", SVC_PW);
    for (name, pw, full, mail) in [
        (
            "alice",
            ALICE_PW,
            Some("Alice Liddell"),
            Some("alice@example.com"),
        ),
        ("bob", BOB_PW, Some("Bob Builder"), Some("bob@example.com")),
        ("carol", CAROL_PW, None, None),
    ] {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if let Some(full) = full {
            args.extend(["--name", full]);
        }
        if let Some(mail) = mail {
            args.extend(["--email", mail]);
        }
        let out = s.cli_stdin(&args, Some(pw));
        assert!(out.status.success(), "user add {name}");
    }
    s.ok(&["group", "add-member", "ldap-search", "svc"]);
    for g in ["staff", "ops", "media", "media-admins"] {
        s.ok(&["group", "add", g]);
    }
    s.ok(&["group", "add-member", "staff", "alice"]);
    s.ok(&["group", "add-member", "media", "alice"]);
    s.ok(&["group", "add-member", "ops", "bob"]);
    s.ok(&["group", "add-member", "media-admins", "bob"]);
    s.ok(&["group", "add-child", "staff", "ops"]);
}

fn svc(s: &Server) -> LdapConn {
    s.bound(&user_dn("svc"), SVC_PW)
}

/// A search that must succeed; returns the entries.
fn found(
    c: &mut LdapConn,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Vec<SearchEntry> {
    let (rc, entries) = search(c, base, scope, filter, attrs);
    assert_eq!(rc, 0, "{filter} under {base}");
    entries
}

/// The DNs of the entries, lowercased, sorted.
fn dns(entries: &[SearchEntry]) -> Vec<String> {
    let mut v: Vec<String> = entries.iter().map(|e| e.dn.to_lowercase()).collect();
    v.sort();
    v
}

fn users(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| user_dn(n).to_lowercase()).collect();
    v.sort();
    v
}

fn groups(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| group_dn(n).to_lowercase()).collect();
    v.sort();
    v
}

fn attr<'a>(e: &'a SearchEntry, name: &str) -> Vec<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

fn bind_rc(s: &Server, dn: &str, pw: &str) -> u32 {
    let mut c = s.conn();
    c.simple_bind(dn, pw).expect("bind").rc
}

const USERS_OU: &str = "ou=users,dc=example,dc=com";
const GROUPS_OU: &str = "ou=groups,dc=example,dc=com";

/// Each application's default user filter with the login filled in, its
/// group searches, and the user bind that follows. Sources: applications.md.
#[test]
fn application_default_filters() {
    let s = Server::start();
    seed(&s);
    let mut c = svc(&s);
    nextcloud(&s, &mut c);
    gitea(&s, &mut c);
    grafana(&s, &mut c);
    authelia(&s, &mut c);
    jellyfin(&s, &mut c);
    synology(&s, &mut c);
}

fn nextcloud(s: &Server, c: &mut LdapConn) {
    // The wizard's user filter (object class inetOrgPerson picked), listing.
    let all = found(
        c,
        USERS_OU,
        Scope::Subtree,
        "(|(objectclass=inetOrgPerson))",
        &["dn", "uid", "displayname", "mail", "entryuuid", "memberof"],
    );
    assert_eq!(dns(&all), users(&["admin", "alice", "bob", "carol", "svc"]));
    // The UUID attribute it detects and keeps: entryUUID.
    assert!(all.iter().all(|e| attr(e, "entryUUID").len() == 1));
    // Login filter with "LDAP/AD username" and "email" ticked; the user
    // types an email. mailPrimaryAddress is unknown here: false, no error.
    let login = "(&(|(objectclass=inetOrgPerson))(|(uid=alice@example.com)\
                 (|(mailPrimaryAddress=alice@example.com)(mail=alice@example.com))))";
    let e = found(c, USERS_OU, Scope::Subtree, login, &["dn", "uid"]);
    assert_eq!(dns(&e), users(&["alice"]));
    assert_eq!(attr(&e[0], "uid"), ["alice"]);
    assert_eq!(bind_rc(s, &e[0].dn, ALICE_PW), 0);
    assert_eq!(bind_rc(s, &e[0].dn, "wrong"), 49);
    // Group filter and the member association (attribute `member`).
    let g = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        "(&(|(objectclass=groupOfNames)))",
        &["cn", "member", "entryuuid"],
    );
    assert_eq!(
        dns(&g),
        groups(&[
            "admins",
            "ldap-search",
            "media",
            "media-admins",
            "ops",
            "staff"
        ])
    );
    let staff = g
        .iter()
        .find(|e| attr(e, "cn") == ["staff"])
        .expect("staff");
    let members: BTreeSet<String> = attr(staff, "member")
        .iter()
        .map(|m| m.to_lowercase())
        .collect();
    assert_eq!(
        members,
        BTreeSet::from([
            user_dn("alice").to_lowercase(),
            group_dn("ops").to_lowercase()
        ])
    );
    let mine = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        &format!(
            "(&(|(objectclass=groupOfNames))(member={}))",
            user_dn("alice")
        ),
        &["cn"],
    );
    assert_eq!(dns(&mine), groups(&["media", "staff"]));
    // Nested groups ticked: memberOf on the user entry, read by base search.
    let me = found(
        c,
        &user_dn("bob"),
        Scope::Base,
        "(objectClass=*)",
        &["memberOf"],
    );
    assert_eq!(
        attr(&me[0], "memberOf")
            .iter()
            .map(|m| m.to_lowercase())
            .collect::<BTreeSet<_>>(),
        groups(&["media-admins", "ops"]).into_iter().collect()
    );
}

fn gitea(s: &Server, c: &mut LdapConn) {
    let attrs = ["uid", "givenName", "sn", "mail", "jpegPhoto"];
    // User filter from Gitea's documentation, %s = login name.
    let e = found(
        c,
        USERS_OU,
        Scope::Subtree,
        "(&(objectClass=posixAccount)(uid=alice))",
        &attrs,
    );
    assert_eq!(dns(&e), users(&["alice"]));
    assert_eq!(attr(&e[0], "mail"), ["alice@example.com"]);
    assert_eq!(attr(&e[0], "sn"), ["Liddell"]);
    // The name-or-email variant, %[1]s = what the user typed.
    let e = found(
        c,
        USERS_OU,
        Scope::Subtree,
        "(&(objectClass=posixAccount)(|(uid=bob@example.com)(mail=bob@example.com)))",
        &attrs,
    );
    assert_eq!(dns(&e), users(&["bob"]));
    assert_eq!(bind_rc(s, &e[0].dn, BOB_PW), 0);
    // Admin filter: evaluated on the user's own entry.
    let admin_filter = format!("(memberOf={})", group_dn("admins"));
    assert_eq!(
        found(c, &user_dn("admin"), Scope::Base, &admin_filter, &["1.1"]).len(),
        1
    );
    assert!(found(c, &user_dn("bob"), Scope::Base, &admin_filter, &["1.1"]).is_empty());
    // Team sync: group attribute memberUid listing the user attribute uid.
    let g = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        "(&(objectClass=posixGroup)(memberUid=alice))",
        &["cn", "memberUid"],
    );
    assert_eq!(dns(&g), groups(&["media", "staff"]));
}

fn grafana(s: &Server, c: &mut LdapConn) {
    // ldap.toml defaults: search_filter "(cn=%s)", search base = the base DN,
    // attributes givenName/sn/cn/memberOf and (set to) mail.
    let e = found(
        c,
        BASE,
        Scope::Subtree,
        "(cn=alice)",
        &["givenName", "sn", "cn", "memberOf", "mail"],
    );
    assert_eq!(dns(&e), users(&["alice"]));
    assert_eq!(
        attr(&e[0], "memberOf")
            .iter()
            .map(|m| m.to_lowercase())
            .collect::<BTreeSet<_>>(),
        groups(&["media", "staff"]).into_iter().collect()
    );
    assert_eq!(attr(&e[0], "mail"), ["alice@example.com"]);
    assert_eq!(bind_rc(s, &e[0].dn, ALICE_PW), 0);
    // The POSIX group search of the sample ldap.toml.
    let g = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        "(&(objectClass=posixGroup)(memberUid=alice))",
        &["cn"],
    );
    assert_eq!(dns(&g), groups(&["media", "staff"]));
    // The groupOfNames variant with group_search_filter_user_attribute = dn.
    let g = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        &format!("(&(objectClass=groupOfNames)(member={}))", user_dn("bob")),
        &["cn"],
    );
    assert_eq!(dns(&g), groups(&["media-admins", "ops"]));
}

fn authelia(s: &Server, c: &mut LdapConn) {
    let attrs = ["uid", "mail", "displayName", "memberOf"];
    // users_filter of the documented example, {input} = bob.
    let e = found(
        c,
        USERS_OU,
        Scope::Subtree,
        "(&(uid=bob)(objectClass=person))",
        &attrs,
    );
    assert_eq!(dns(&e), users(&["bob"]));
    assert_eq!(attr(&e[0], "displayName"), ["Bob Builder"]);
    // The username-or-email form, typed in as an email address.
    let e = found(
        c,
        USERS_OU,
        Scope::Subtree,
        "(&(|(uid=bob@example.com)(mail=bob@example.com))(objectClass=inetOrgPerson))",
        &attrs,
    );
    assert_eq!(dns(&e), users(&["bob"]));
    assert_eq!(bind_rc(s, &e[0].dn, BOB_PW), 0);
    // groups_filter, {dn} = the user's DN: direct groups.
    let bob = user_dn("bob");
    let g = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        &format!("(&(member={bob})(objectClass=groupOfNames))"),
        &["cn"],
    );
    assert_eq!(dns(&g), groups(&["media-admins", "ops"]));
    // The in-chain form (transitive membership): staff through ops.
    let g = found(
        c,
        GROUPS_OU,
        Scope::Subtree,
        &format!("(&(member:1.2.840.113556.1.4.1941:={bob})(objectClass=groupOfNames))"),
        &["cn"],
    );
    assert_eq!(dns(&g), groups(&["media-admins", "ops", "staff"]));
    // And on the user side: every user in staff, directly or not.
    let u = found(
        c,
        USERS_OU,
        Scope::Subtree,
        &format!("(memberOf:1.2.840.113556.1.4.1941:={})", group_dn("staff")),
        &["1.1"],
    );
    assert_eq!(dns(&u), users(&["alice", "bob"]));
}

fn jellyfin(s: &Server, c: &mut LdapConn) {
    // LdapSearchFilter (default shape: memberOf of the users' group) over
    // the base DN with LdapSearchAttributes; the plugin matches the typed
    // name against those attributes itself.
    let attrs = ["uid", "cn", "mail", "displayName"];
    let e = found(
        c,
        BASE,
        Scope::Subtree,
        &format!("(memberOf={})", group_dn("media")),
        &attrs,
    );
    assert_eq!(dns(&e), users(&["alice"]));
    assert_eq!(attr(&e[0], "uid"), ["alice"]);
    assert_eq!(attr(&e[0], "displayName"), ["Alice Liddell"]);
    assert_eq!(bind_rc(s, &e[0].dn, ALICE_PW), 0);
    // LdapAdminFilter, base search on the user's DN. The plugin's default
    // names an attribute this server does not have: no match, no error.
    let e = found(
        c,
        &user_dn("alice"),
        Scope::Base,
        "(enabledService=JellyfinAdministrator)",
        &attrs,
    );
    assert!(e.is_empty());
    let admin_filter = format!("(memberOf={})", group_dn("media-admins"));
    assert!(found(c, &user_dn("alice"), Scope::Base, &admin_filter, &attrs).is_empty());
    assert_eq!(
        found(c, &user_dn("bob"), Scope::Base, &admin_filter, &attrs).len(),
        1
    );
}

fn synology(s: &Server, c: &mut LdapConn) {
    // DSM's standard profile follows RFC 2307: passwd, group, shadow maps.
    let passwd = found(
        c,
        BASE,
        Scope::Subtree,
        "(objectClass=posixAccount)",
        &[
            "uid",
            "uidNumber",
            "gidNumber",
            "gecos",
            "homeDirectory",
            "loginShell",
            "userPassword",
            "cn",
        ],
    );
    assert_eq!(
        dns(&passwd),
        users(&["admin", "alice", "bob", "carol", "svc"])
    );
    let mut uid_numbers = HashSet::new();
    for e in &passwd {
        let n = attr(e, "uidNumber");
        assert_eq!(n.len(), 1, "{}", e.dn);
        assert!(uid_numbers.insert(n[0].to_string()), "uidNumber unique");
        assert_eq!(attr(e, "gidNumber").len(), 1);
        assert_eq!(
            attr(e, "homeDirectory"),
            [format!("/home/{}", attr(e, "uid")[0])]
        );
        assert!(attr(e, "userPassword").is_empty(), "no secrets in entries");
    }
    let group = found(
        c,
        BASE,
        Scope::Subtree,
        "(objectClass=posixGroup)",
        &["cn", "gidNumber", "memberUid", "member"],
    );
    assert_eq!(
        dns(&group),
        groups(&[
            "admins",
            "ldap-search",
            "media",
            "media-admins",
            "ops",
            "staff"
        ])
    );
    let staff = group
        .iter()
        .find(|e| attr(e, "cn") == ["staff"])
        .expect("staff");
    assert_eq!(attr(staff, "memberUid"), ["alice"]);
    assert!(attr(staff, "gidNumber")[0].parse::<u32>().is_ok());
    // Shadow data is not served (passwords never leave the server; DSM
    // authenticates with a bind): the query succeeds with no entries.
    let shadow = found(
        c,
        BASE,
        Scope::Subtree,
        "(objectClass=shadowAccount)",
        &[
            "uid",
            "userPassword",
            "shadowLastChange",
            "shadowMax",
            "shadowExpire",
        ],
    );
    assert!(shadow.is_empty());
    // Login: bind as the DN found for the name, with the password.
    let e = found(
        c,
        BASE,
        Scope::Subtree,
        "(&(objectClass=posixAccount)(uid=carol))",
        &["1.1"],
    );
    assert_eq!(bind_rc(s, &e[0].dn, CAROL_PW), 0);
}

// ---------------------------------------------------------------------
// Apache Directory Studio
// ---------------------------------------------------------------------

/// What Directory Studio reads when it opens a connection: the root DSE
/// with `*` and `+` (anonymously, before any browsing), then the entry
/// named by subschemaSubentry. Every schema description must parse, and
/// refer only to syntaxes, matching rules, attribute types and classes
/// that the same entry defines.
#[test]
fn directory_studio_root_dse_and_subschema() {
    let s = Server::start();
    let mut anon = s.conn();
    let root = found(&mut anon, "", Scope::Base, "(objectClass=*)", &["*", "+"]);
    assert_eq!(root.len(), 1);
    let r = &root[0];
    assert_eq!(attr(r, "namingContexts"), [BASE]);
    assert_eq!(attr(r, "supportedLDAPVersion"), ["3"]);
    assert_eq!(attr(r, "subschemaSubentry"), ["cn=subschema"]);
    assert_eq!(attr(r, "vendorName"), ["Portcullis"]);
    assert!(attr(r, "supportedControl").contains(&"1.2.840.113556.1.4.319"));
    for ext in [
        "1.3.6.1.4.1.4203.1.11.1", // Password Modify
        "1.3.6.1.4.1.4203.1.11.3", // WhoAmI
        "1.3.6.1.4.1.1466.20037",  // StartTLS
    ] {
        assert!(attr(r, "supportedExtension").contains(&ext), "{ext}");
    }

    let want = [
        "attributeTypes",
        "objectClasses",
        "ldapSyntaxes",
        "matchingRules",
        "matchingRuleUse",
        "createTimestamp",
        "modifyTimestamp",
    ];
    let sub = found(
        &mut anon,
        "cn=subschema",
        Scope::Base,
        "(objectClass=subschema)",
        &want,
    );
    assert_eq!(sub.len(), 1);
    let e = &sub[0];
    for ts in ["createTimestamp", "modifyTimestamp"] {
        let v = attr(e, ts);
        assert_eq!(v.len(), 1, "{ts}");
        assert!(
            v[0].len() == 15
                && v[0].ends_with('Z')
                && v[0][..14].bytes().all(|b| b.is_ascii_digit()),
            "{ts}: {}",
            v[0]
        );
    }
    let parse_all = |name: &str| -> Vec<Desc> {
        let values = attr(e, name);
        assert!(!values.is_empty(), "{name} is empty");
        values
            .iter()
            .map(|v| Desc::parse(v).unwrap_or_else(|err| panic!("{name}: {err}: {v}")))
            .collect()
    };
    let syntaxes = parse_all("ldapSyntaxes");
    let rules = parse_all("matchingRules");
    let types = parse_all("attributeTypes");
    let classes = parse_all("objectClasses");
    let uses = parse_all("matchingRuleUse");

    let syntax_oids: HashSet<&str> = syntaxes.iter().map(|d| d.oid.as_str()).collect();
    let rule_names: HashSet<String> = rules.iter().flat_map(Desc::names).collect();
    let type_names: HashSet<String> = types.iter().flat_map(Desc::names).collect();
    let class_names: HashSet<String> = classes.iter().flat_map(Desc::names).collect();
    for d in &syntaxes {
        assert!(d.one("DESC").is_some(), "syntax {} has a DESC", d.oid);
    }
    for d in &rules {
        assert!(!d.names().is_empty(), "rule {} has a NAME", d.oid);
        let syntax = d.one("SYNTAX").expect("rule SYNTAX");
        // Substring assertion syntax (RFC 4517 §3.3.30) is not an
        // attribute syntax, so it need not be listed.
        if syntax != "1.3.6.1.4.1.1466.115.121.1.58" {
            assert!(
                syntax_oids.contains(syntax),
                "rule {}: syntax {syntax}",
                d.oid
            );
        }
    }
    for d in &types {
        assert!(!d.names().is_empty(), "attribute type {} has a NAME", d.oid);
        let syntax = d.one("SYNTAX").expect("SYNTAX");
        let syntax = syntax.split('{').next().unwrap_or(syntax);
        assert!(syntax_oids.contains(syntax), "{}: syntax {syntax}", d.oid);
        for rule in ["EQUALITY", "ORDERING", "SUBSTR"] {
            if let Some(r) = d.one(rule) {
                assert!(
                    rule_names.contains(&r.to_lowercase()),
                    "{}: {rule} {r}",
                    d.oid
                );
            }
        }
    }
    for d in &classes {
        for kw in ["MUST", "MAY"] {
            for a in d.list(kw) {
                assert!(
                    type_names.contains(&a.to_lowercase()),
                    "class {}: {kw} {a}",
                    d.oid
                );
            }
        }
        for sup in d.list("SUP") {
            assert!(
                class_names.contains(&sup.to_lowercase()),
                "class {}: SUP {sup}",
                d.oid
            );
        }
        let kinds = ["ABSTRACT", "STRUCTURAL", "AUXILIARY"];
        assert!(kinds.iter().filter(|k| d.flags.contains(**k)).count() <= 1);
    }
    for d in &uses {
        assert!(
            rule_names.contains(&d.names()[0]),
            "matchingRuleUse {}",
            d.oid
        );
        assert!(!d.list("APPLIES").is_empty());
        for a in d.list("APPLIES") {
            assert!(type_names.contains(&a.to_lowercase()), "APPLIES {a}");
        }
    }
    for needed in [
        "inetorgperson",
        "posixaccount",
        "posixgroup",
        "groupofnames",
        "subschema",
    ] {
        assert!(class_names.contains(needed), "{needed}");
    }
    for needed in [
        "uid",
        "memberof",
        "member",
        "memberuid",
        "entryuuid",
        "gidnumber",
    ] {
        assert!(type_names.contains(needed), "{needed}");
    }
}

/// One RFC 4512 §4.1 description: `( oid KEYWORD value … )`.
struct Desc {
    oid: String,
    fields: HashMap<String, Vec<String>>,
    flags: HashSet<String>,
}

impl Desc {
    fn parse(text: &str) -> Result<Desc, String> {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(&ch) = chars.peek() {
            match ch {
                ' ' => {
                    chars.next();
                }
                '(' | ')' | '$' => {
                    tokens.push(ch.to_string());
                    chars.next();
                }
                '\'' => {
                    chars.next();
                    let s: String = chars.by_ref().take_while(|&c| c != '\'').collect();
                    tokens.push(format!("'{s}"));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == ' ' || c == '(' || c == ')' || c == '$' || c == '\'' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    tokens.push(s);
                }
            }
        }
        let mut it = tokens.into_iter().peekable();
        if it.next().as_deref() != Some("(") {
            return Err("does not start with (".into());
        }
        let oid = it.next().ok_or("no OID")?;
        if oid.is_empty()
            || !oid
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("not a numeric OID: {oid}"));
        }
        let (mut fields, mut flags) = (HashMap::new(), HashSet::new());
        loop {
            let kw = it.next().ok_or("no closing )")?;
            if kw == ")" {
                break;
            }
            if !kw
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
            {
                return Err(format!("not a keyword: {kw}"));
            }
            let with_value = matches!(
                kw.as_str(),
                "NAME"
                    | "DESC"
                    | "SUP"
                    | "EQUALITY"
                    | "ORDERING"
                    | "SUBSTR"
                    | "SYNTAX"
                    | "USAGE"
                    | "MUST"
                    | "MAY"
                    | "APPLIES"
            ) || kw.starts_with("X-");
            if !with_value {
                flags.insert(kw);
                continue;
            }
            let mut values = Vec::new();
            if it.peek().map(String::as_str) == Some("(") {
                it.next();
                loop {
                    let v = it.next().ok_or("unclosed list")?;
                    match v.as_str() {
                        ")" => break,
                        "$" => continue,
                        _ => values.push(v.trim_start_matches('\'').to_string()),
                    }
                }
            } else {
                let v = it.next().ok_or("missing value")?;
                if v == ")" {
                    return Err(format!("{kw} has no value"));
                }
                values.push(v.trim_start_matches('\'').to_string());
            }
            fields.insert(kw, values);
        }
        if it.next().is_some() {
            return Err("text after the closing )".into());
        }
        Ok(Desc { oid, fields, flags })
    }

    /// NAMEs and the OID, lowercased.
    fn names(&self) -> Vec<String> {
        self.list("NAME")
            .iter()
            .map(|n| n.to_lowercase())
            .chain(std::iter::once(self.oid.clone()))
            .collect()
    }

    fn list(&self, kw: &str) -> &[String] {
        self.fields.get(kw).map(Vec::as_slice).unwrap_or(&[])
    }

    fn one(&self, kw: &str) -> Option<&str> {
        self.list(kw).first().map(String::as_str)
    }
}

// ---------------------------------------------------------------------
// python-ldap and ldap3
// ---------------------------------------------------------------------

const DEBIAN_PYTHON: &str = "/usr/bin/python3";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// tests/clients/python_clients.py with Debian's python3-ldap and
/// python3-ldap3: bind, paged search (page size 2 for 5 users), Password
/// Modify with old and new password, bind with the new one.
#[test]
fn python_ldap_and_ldap3() {
    let probe = Command::new(DEBIAN_PYTHON)
        .args(["-c", "import ldap, ldap3"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "SKIPPED python_ldap_and_ldap3: {DEBIAN_PYTHON} cannot import ldap and ldap3 \
                 (apt-get install python3-ldap python3-ldap3; scripts/test does)"
            );
            return;
        }
    }
    let s = Server::start();
    seed(&s);
    let env = [
        ("PC_URL", s.url.clone()),
        ("PC_BASE", BASE.to_string()),
        ("PC_SVC_DN", user_dn("svc")),
        ("PC_SVC_PW", SVC_PW.to_string()),
        ("PC_PAGE_SIZE", "2".to_string()),
        ("PC_USER1_DN", user_dn("alice")),
        ("PC_USER1_OLD", ALICE_PW.to_string()),
        ("PC_USER1_NEW", "alice-New-2".to_string()),
        ("PC_USER2_DN", user_dn("bob")),
        ("PC_USER2_OLD", BOB_PW.to_string()),
        ("PC_USER2_NEW", "bob-New;2".to_string()),
    ];
    let out = Command::new(DEBIAN_PYTHON)
        .arg(script("python_clients.py"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("PYTHONPATH")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python script failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut steps: HashMap<(String, String), serde_json::Value> = HashMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let key = (
            v["lib"].as_str().unwrap_or("").to_string(),
            v["step"].as_str().unwrap_or("").to_string(),
        );
        steps.insert(key, v);
    }
    let all_users = ["admin", "alice", "bob", "carol", "svc"];
    for lib in ["python-ldap", "ldap3"] {
        let step = |name: &str| {
            let v = steps
                .get(&(lib.to_string(), name.to_string()))
                .unwrap_or_else(|| panic!("{lib} {name} missing:\n{stdout}"));
            assert_eq!(v["ok"], true, "{lib} {name}: {v}");
            v.clone()
        };
        assert_eq!(step("bind")["whoami"], format!("dn:{}", user_dn("svc")));
        let paged = step("paged");
        assert_eq!(paged["pages"], 3, "{lib}: 5 users in pages of 2");
        assert_eq!(paged["entries"], serde_json::json!(all_users), "{lib}");
        step("passwd");
        let user = if lib == "python-ldap" { "alice" } else { "bob" };
        assert_eq!(
            step("rebind_new")["whoami"],
            format!("dn:{}", user_dn(user))
        );
        assert_eq!(step("rebind_old")["result"], "invalidCredentials", "{lib}");
    }
    // ldap3 read the root DSE and cn=subschema and parsed them.
    let info = &steps[&("ldap3".to_string(), "bind".to_string())];
    assert_eq!(info["naming_contexts"], serde_json::json!([BASE]));
    assert_eq!(info["paged_control"], true);
    assert_eq!(info["password_modify"], true);
    assert!(info["schema_attribute_types"].as_u64().unwrap_or(0) >= 40);
    assert_eq!(info["inetorgperson_must"], serde_json::json!(["cn", "sn"]));
    // The server agrees: the new passwords bind.
    assert_eq!(bind_rc(&s, &user_dn("alice"), "alice-New-2"), 0);
    assert_eq!(bind_rc(&s, &user_dn("bob"), "bob-New;2"), 0);
}

// ---------------------------------------------------------------------
// nslcd and SSSD
// ---------------------------------------------------------------------

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn have(path: &str) -> bool {
    Path::new(path).exists()
}

/// Whether a library is in a multiarch directory, `/lib/<triplet>/REL` or
/// `/usr/lib/<triplet>/REL`.
fn have_lib(rel: &str) -> bool {
    ["/lib", "/usr/lib"].iter().any(|root| {
        std::fs::read_dir(root)
            .map(|dir| dir.flatten().any(|e| e.path().join(rel).exists()))
            .unwrap_or(false)
    })
}

/// Why the daemon test cannot run here, if it cannot.
fn cannot_run(daemon: &str, files: &[&str]) -> Option<String> {
    if !is_root() {
        return Some(format!("{daemon} needs root (it writes system paths)"));
    }
    for f in files {
        if !have(f) {
            return Some(format!("{f} is missing (scripts/test installs it)"));
        }
    }
    None
}

/// A daemon started by a test: stopped with SIGTERM by PID (then SIGKILL)
/// on drop, so a failed assertion never leaves it running.
struct Daemon {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Daemon {
    fn start(name: &'static str, cmd: &mut Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("daemon log");
        let err = file.try_clone().expect("log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { child, name, log }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A system file replaced for the test and put back (or removed, if it
/// did not exist) on drop.
struct Replaced {
    path: PathBuf,
    saved: Option<(Vec<u8>, std::fs::Permissions)>,
}

impl Replaced {
    fn write(path: &str, text: &str, mode: u32) -> Replaced {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from(path);
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|b| std::fs::metadata(&path).ok().map(|m| (b, m.permissions())));
        let mut f =
            std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(text.as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        Replaced { path, saved }
    }
}

impl Drop for Replaced {
    fn drop(&mut self) {
        match self.saved.take() {
            Some((bytes, perms)) => {
                let _ = std::fs::write(&self.path, bytes);
                let _ = std::fs::set_permissions(&self.path, perms);
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// `getent -s SERVICE DATABASE KEY` until it answers (the daemon may still
/// be connecting), within a generous deadline. Returns the last output.
fn getent_until(
    service: &str,
    db: &str,
    key: &str,
    daemon: &mut Daemon,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(status) = daemon.exited() {
            panic!("{} exited ({status}):\n{}", daemon.name, daemon.log_tail());
        }
        let out = Command::new("getent")
            .args(["-s", service, db, key])
            .output()
            .expect("run getent");
        last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && ok(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "getent -s {service} {db} {key}: got {last:?}\n{} log:\n{}",
        daemon.name,
        daemon.log_tail()
    );
}

/// `getent` for a name that does not exist: exit status 2 (not found).
fn getent_missing(service: &str, db: &str, key: &str) -> i32 {
    Command::new("getent")
        .args(["-s", service, db, key])
        .status()
        .expect("getent")
        .code()
        .unwrap_or(-1)
}

/// The fields of a passwd line.
fn passwd_fields(line: &str) -> Vec<String> {
    line.split(':').map(str::to_string).collect()
}

/// The group IDs of an `initgroups` line (`name gid gid …`).
fn gids(line: &str) -> BTreeSet<String> {
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// gidNumber of a group, read over LDAP.
fn gid_of(s: &Server, group: &str) -> String {
    let mut c = svc(s);
    let e = found(
        &mut c,
        &group_dn(group),
        Scope::Base,
        "(objectClass=*)",
        &["gidNumber"],
    );
    attr(&e[0], "gidNumber")[0].to_string()
}

/// nslcd (libnss-ldapd) with the configuration of docs/clients/nslcd.md:
/// `getent passwd alice`, `getent group staff`, and `getent initgroups`
/// (what `id` asks; `id` itself would need nsswitch.conf changed).
#[test]
fn nslcd_getent() {
    if let Some(why) = cannot_run("nslcd", &["/usr/sbin/nslcd", "/usr/bin/getent"]) {
        eprintln!("SKIPPED nslcd_getent: {why}");
        return;
    }
    if !have_lib("libnss_ldap.so.2") {
        eprintln!("SKIPPED nslcd_getent: libnss_ldap.so.2 is missing (package libnss-ldapd)");
        return;
    }
    let _lock = SYSTEM.lock().unwrap_or_else(|e| e.into_inner());
    let s = Server::start();
    seed(&s);
    // The account the example binds as, in the search group.
    s.add_user("nslcd", SVC_PW);
    s.ok(&["group", "add-member", "ldap-search", "nslcd"]);
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/clients/nslcd.conf"),
    )
    .expect("docs/clients/nslcd.conf");
    let conf = conf
        .replace("ldap://127.0.0.1:3389/", &format!("{}/", s.url))
        .replace("SEARCH-ACCOUNT-PASSWORD", SVC_PW);
    assert!(conf.contains(&s.url), "the example names the default URI");
    let _conf = Replaced::write("/etc/nslcd.conf", &conf, 0o600);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nslcd = Daemon::start(
        "nslcd",
        Command::new("/usr/sbin/nslcd").arg("-d"),
        tmp.path().join("nslcd.log"),
    );

    let alice = getent_until("ldap", "passwd", "alice", &mut nslcd, |l| {
        l.starts_with("alice:")
    });
    let f = passwd_fields(&alice);
    assert_eq!(f.len(), 7, "{alice}");
    assert_eq!(f[0], "alice");
    assert_eq!(f[1], "*", "no password hash leaves the server");
    assert!(f[2].parse::<u32>().is_ok_and(|n| n >= 2000), "{alice}");
    assert_eq!(f[4], "Alice Liddell", "gecos mapped to displayName");
    assert_eq!(f[5], "/home/alice");
    assert_eq!(f[6], "/bin/bash");
    // By number too.
    let by_uid = getent_until("ldap", "passwd", &f[2], &mut nslcd, |l| {
        l.starts_with("alice:")
    });
    assert_eq!(by_uid, alice);

    // staff: alice directly, bob through the nested group ops.
    let staff = getent_until("ldap", "group", "staff", &mut nslcd, |l| {
        l.starts_with("staff:")
    });
    let g: Vec<&str> = staff.split(':').collect();
    assert_eq!(g[2], gid_of(&s, "staff"));
    let members: BTreeSet<&str> = g[3].split(',').collect();
    assert_eq!(members, BTreeSet::from(["alice", "bob"]), "{staff}");

    let init = getent_until("ldap", "initgroups", "alice", &mut nslcd, |l| {
        l.starts_with("alice")
    });
    assert_eq!(
        gids(&init),
        BTreeSet::from([gid_of(&s, "staff"), gid_of(&s, "media")])
    );
    let init = getent_until("ldap", "initgroups", "bob", &mut nslcd, |l| {
        l.starts_with("bob")
    });
    assert_eq!(
        gids(&init),
        BTreeSet::from([
            gid_of(&s, "ops"),
            gid_of(&s, "media-admins"),
            gid_of(&s, "staff")
        ])
    );
    assert_eq!(getent_missing("ldap", "passwd", "nosuchuser"), 2);
}

/// SSSD's LDAP provider with `ldap_schema = rfc2307bis`, over StartTLS
/// with the generated certificate (docs/clients/sssd.md).
#[test]
fn sssd_getent() {
    if let Some(why) = cannot_run("sssd", &["/usr/sbin/sssd", "/usr/bin/getent"]) {
        eprintln!("SKIPPED sssd_getent: {why}");
        return;
    }
    if !have_lib("sssd/libsss_ldap_common.so") || !have_lib("libnss_sss.so.2") {
        eprintln!("SKIPPED sssd_getent: sssd-ldap or libnss-sss is missing");
        return;
    }
    let _lock = SYSTEM.lock().unwrap_or_else(|e| e.into_inner());
    let s = Server::start();
    seed(&s);
    s.add_user("sssd", SVC_PW);
    s.ok(&["group", "add-member", "ldap-search", "sssd"]);
    let port = s.addr.rsplit(':').next().expect("port").to_string();
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/clients/sssd.conf"),
    )
    .expect("docs/clients/sssd.conf");
    let conf = conf
        .replace("127.0.0.1:3389", &format!("127.0.0.1:{port}"))
        .replace(
            "/var/lib/portcullis/tls/cert.pem",
            &s.cacert().display().to_string(),
        )
        .replace("SEARCH-ACCOUNT-PASSWORD", SVC_PW);
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf_path = tmp.path().join("sssd.conf");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&conf_path, conf).expect("write sssd.conf");
        std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let clear_cache = || {
        for dir in ["/var/lib/sss/db", "/var/lib/sss/mc"] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    };
    clear_cache();
    struct ClearOnDrop<F: Fn()>(F);
    impl<F: Fn()> Drop for ClearOnDrop<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    // Declared before the daemon: dropped after it has stopped.
    let _clear = ClearOnDrop(clear_cache);
    let mut sssd = Daemon::start(
        "sssd",
        Command::new("/usr/sbin/sssd")
            .args(["-i", "-d", "3", "--logger=stderr", "-c"])
            .arg(&conf_path),
        tmp.path().join("sssd.log"),
    );

    let alice = getent_until("sss", "passwd", "alice", &mut sssd, |l| {
        l.starts_with("alice:")
    });
    let f = passwd_fields(&alice);
    assert_eq!(f.len(), 7, "{alice}");
    assert!(f[2].parse::<u32>().is_ok_and(|n| n >= 2000), "{alice}");
    assert_eq!(f[4], "Alice Liddell", "gecos from displayName");
    assert_eq!(f[5], "/home/alice");
    assert_eq!(f[6], "/bin/bash");

    let staff = getent_until("sss", "group", "staff", &mut sssd, |l| {
        l.starts_with("staff:")
    });
    let g: Vec<&str> = staff.split(':').collect();
    assert_eq!(g[2], gid_of(&s, "staff"));
    assert!(g[3].split(',').any(|m| m == "alice"), "{staff}");

    // initgroups: rfc2307bis member DNs, nested groups followed.
    let init = getent_until("sss", "initgroups", "bob", &mut sssd, |l| {
        l.starts_with("bob")
    });
    let want = BTreeSet::from([
        gid_of(&s, "ops"),
        gid_of(&s, "media-admins"),
        gid_of(&s, "staff"),
    ]);
    assert!(gids(&init).is_superset(&want), "{init}");
    let init = getent_until("sss", "initgroups", "alice", &mut sssd, |l| {
        l.starts_with("alice")
    });
    assert!(
        gids(&init).is_superset(&BTreeSet::from([gid_of(&s, "staff"), gid_of(&s, "media")])),
        "{init}"
    );
    assert_eq!(getent_missing("sss", "passwd", "nosuchuser"), 2);
}
