//! Compare, extended operations, the root DSE and subschema, unsupported
//! operations and malformed input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ldap3::exop::{PasswordModify, WhoAmI, WhoAmIResp};
use ldap3::{Mod, Scope};

use crate::harness::{search, tool, user_dn, Server, BASE};

#[test]
fn compare_whoami_and_unsupported_operations() {
    let s = Server::start();
    s.add_user("dave", "dave-pw-1");
    s.ok(&["user", "set-attr", "dave", "mail", "Dave@Example.com"]);
    let mut c = s.bound(&user_dn("dave"), "dave-pw-1");

    // compare by syntax: case-insensitive string, integer, missing attribute
    assert!(c
        .compare(&user_dn("dave"), "mail", "dave@example.COM")
        .expect("compare")
        .equal()
        .expect("5/6"));
    assert!(!c
        .compare(&user_dn("dave"), "mail", "eve@example.com")
        .expect("compare")
        .equal()
        .expect("5/6"));
    let uid = s.ok(&["user", "show", "dave", "--json"]);
    let uid: serde_json::Value = serde_json::from_str(&uid).expect("json");
    let n = uid["uid_number"].as_u64().expect("uid_number");
    assert!(c
        .compare(&user_dn("dave"), "uidNumber", format!("{n}"))
        .expect("compare")
        .equal()
        .expect("5/6"));
    let r = c
        .compare(&user_dn("dave"), "telephoneNumber", "1")
        .expect("compare");
    assert_eq!(r.0.rc, 16);
    let r = c
        .compare(&user_dn("dave"), "noSuchType", "1")
        .expect("compare");
    assert_eq!(r.0.rc, 17);
    // an entry dave may not read is not disclosed
    let r = c
        .compare(&user_dn("admin"), "uid", "admin")
        .expect("compare");
    assert_eq!(r.0.rc, 32);
    let (code, out, _) = tool(
        "ldapcompare",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("dave"),
            "-w",
            "dave-pw-1",
            &user_dn("dave"),
            "uid:DAVE",
        ],
        &[],
    );
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("TRUE"));

    // WhoAmI
    let (exop, res) = c
        .extended(WhoAmI)
        .expect("whoami")
        .success()
        .expect("success");
    let resp: WhoAmIResp = exop.parse();
    assert_eq!(res.rc, 0);
    assert_eq!(resp.authzid, format!("dn:{}", user_dn("dave")));

    // writes an ordinary user may not make are refused with 50 and the
    // connection stays usable (tests/it/write.rs covers writes)
    let r = c
        .modify(
            &user_dn("dave"),
            vec![Mod::Replace("uidNumber", ["1"].into())],
        )
        .expect("modify");
    assert_eq!(r.rc, 50);
    let r = c.delete(&user_dn("dave")).expect("delete");
    assert_eq!(r.rc, 50);
    let (rc, e) = search(
        &mut c,
        &user_dn("dave"),
        Scope::Base,
        "(objectClass=*)",
        &["uid"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    // an unknown extended operation: protocolError, connection still usable
    let r = c
        .extended(ldap3::exop::Exop {
            name: Some("1.2.3.4.5".into()),
            val: None,
        })
        .expect("exop");
    assert_eq!(r.1.rc, 2);
    let (rc, _) = search(
        &mut c,
        &user_dn("dave"),
        Scope::Base,
        "(objectClass=*)",
        &["uid"],
    );
    assert_eq!(rc, 0);
}

#[test]
fn password_modify() {
    let s = Server::start();
    s.add_user("erin", "erin-old-1");
    s.add_user("frank", "frank-pw-1");
    let erin = user_dn("erin");

    // a user changes its own password with the old one (ldappasswd)
    let (code, _, err) = tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &erin,
            "-w",
            "erin-old-1",
            "-a",
            "erin-old-1",
            "-s",
            "erin-new-2",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let mut c = s.conn();
    assert_eq!(c.simple_bind(&erin, "erin-old-1").expect("bind").rc, 49);
    assert_eq!(c.simple_bind(&erin, "erin-new-2").expect("bind").rc, 0);

    // a wrong old password is refused
    let r = c
        .extended(PasswordModify {
            user_id: None,
            old_pass: Some("wrong"),
            new_pass: Some("erin-new-3"),
        })
        .expect("exop");
    assert_eq!(r.1.rc, 49);
    // without the old password: refused
    let r = c
        .extended(PasswordModify {
            user_id: None,
            old_pass: None,
            new_pass: Some("erin-new-3"),
        })
        .expect("exop");
    assert_eq!(r.1.rc, 53);
    // an ordinary user cannot change someone else's password
    let r = c
        .extended(PasswordModify {
            user_id: Some(&user_dn("frank")),
            old_pass: Some("frank-pw-1"),
            new_pass: Some("hijacked"),
        })
        .expect("exop");
    assert_eq!(r.1.rc, 50);
    assert_eq!(
        s.conn()
            .simple_bind(&user_dn("frank"), "frank-pw-1")
            .expect("bind")
            .rc,
        0
    );

    // an admin sets anyone's password, without the old one
    let (code, _, err) = tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("admin"),
            "-w",
            &s.admin_password,
            "-s",
            "frank-new-2",
            &user_dn("frank"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s.conn()
            .simple_bind(&user_dn("frank"), "frank-new-2")
            .expect("bind")
            .rc,
        0
    );
    // and asking for a generated one returns it, and it works
    let (code, out, err) = tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("admin"),
            "-w",
            &s.admin_password,
            &user_dn("frank"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("New password: "))
        .expect("generated password")
        .trim()
        .to_string();
    assert_eq!(
        s.conn()
            .simple_bind(&user_dn("frank"), &generated)
            .expect("bind")
            .rc,
        0
    );
    // anonymous cannot change passwords
    let r = s
        .conn()
        .extended(PasswordModify {
            user_id: Some(&user_dn("frank")),
            old_pass: None,
            new_pass: Some("x"),
        })
        .expect("exop");
    assert_eq!(r.1.rc, 50);
}

#[test]
fn root_dse_and_subschema() {
    let s = Server::start();
    let (code, out, err) = tool(
        "ldapsearch",
        &["-x", "-LLL", "-H", &s.url, "-b", "", "-s", "base", "+"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    for line in [
        format!("namingContexts: {BASE}"),
        format!("defaultNamingContext: {BASE}"),
        "supportedLDAPVersion: 3".to_string(),
        "supportedControl: 1.2.840.113556.1.4.319".to_string(),
        "supportedExtension: 1.3.6.1.4.1.4203.1.11.3".to_string(),
        "supportedExtension: 1.3.6.1.4.1.4203.1.11.1".to_string(),
        "subschemaSubentry: cn=subschema".to_string(),
        "vendorName: Portcullis".to_string(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("vendorVersion: ")),
        "{out}"
    );

    let (code, out, err) = tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &s.url,
            "-b",
            "cn=subschema",
            "-s",
            "base",
            "(objectClass=subschema)",
            "attributeTypes",
            "objectClasses",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    for needle in [
        "'memberOf'",
        "'uidNumber'",
        "'inetOrgPerson'",
        "'posixAccount'",
        "'groupOfNames'",
        "'ak-active'",
    ] {
        assert!(out.contains(needle), "subschema lacks {needle}");
    }
}

#[test]
fn malformed_packet_closes_only_its_connection() {
    let s = Server::start();
    let mut good = s.admin();
    let mut bad = TcpStream::connect(&s.addr).expect("connect");
    bad.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // A SEQUENCE whose contents are not an LDAPMessage.
    bad.write_all(&[0x30, 0x06, 0x04, 0x01, 0x41, 0x04, 0x01, 0x42])
        .expect("write");
    let mut buf = Vec::new();
    // The server sends a notice of disconnection, then closes: read_to_end
    // ends (instead of timing out).
    bad.read_to_end(&mut buf)
        .expect("the server closes the connection");
    assert!(!buf.is_empty(), "a notice of disconnection comes first");
    // A complete BER element that is not a SEQUENCE at all.
    let mut junk = TcpStream::connect(&s.addr).expect("connect");
    junk.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    junk.write_all(&[0x02, 0x01, 0x05]).expect("write");
    let mut buf = Vec::new();
    junk.read_to_end(&mut buf)
        .expect("the server closes the connection");
    // Other clients are unaffected.
    let (rc, e) = search(
        &mut good,
        &user_dn("admin"),
        Scope::Base,
        "(objectClass=*)",
        &["uid"],
    );
    assert_eq!((rc, e.len()), (0, 1));
    let mut fresh = s.admin();
    let (rc, _) = search(&mut fresh, BASE, Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!(rc, 0);
}
