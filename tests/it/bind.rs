//! Simple bind: DN forms, refusals and their result codes, and an account
//! disabled through the CLI while the server runs.

use crate::harness::{tool, user_dn, Server, BASE};

#[test]
fn bind_rules() {
    let s = Server::start();
    s.add_user("alice", "correct horse;battery");

    // cn= and uid= forms, case-insensitive, with spacing
    for dn in [
        user_dn("alice"),
        format!("uid=alice,ou=users,{BASE}"),
        "CN=Alice, OU=Users, DC=Example, DC=Com".to_string(),
    ] {
        let mut c = s.conn();
        let r = c.simple_bind(&dn, "correct horse;battery").expect("bind");
        assert_eq!(r.rc, 0, "{dn}: {}", r.text);
    }

    // wrong password and unknown user: 49 with the same text
    let mut c = s.conn();
    let wrong = c.simple_bind(&user_dn("alice"), "wrong").expect("bind");
    let unknown = c.simple_bind(&user_dn("nobody"), "wrong").expect("bind");
    let outside = c
        .simple_bind("cn=alice,dc=other", "correct horse;battery")
        .expect("bind");
    assert_eq!(wrong.rc, 49);
    assert_eq!(unknown.rc, 49);
    assert_eq!(outside.rc, 49);
    assert_eq!(wrong.text, unknown.text);
    // after a failed bind the connection is anonymous
    let (rc, _) =
        crate::harness::search(&mut c, "", ldap3::Scope::Base, "(objectClass=*)", &["1.1"]);
    assert_eq!(rc, 0);

    // RFC 4513 §5.1.2: a DN with an empty password is refused with 53
    let r = c.simple_bind(&user_dn("alice"), "").expect("bind");
    assert_eq!(r.rc, 53);
    // anonymous bind succeeds
    let r = c.simple_bind("", "").expect("bind");
    assert_eq!(r.rc, 0);

    // a user without a password cannot bind
    s.ok(&["user", "add", "nopass"]);
    let r = c.simple_bind(&user_dn("nopass"), "anything").expect("bind");
    assert_eq!(r.rc, 49);

    // ldapwhoami reports the bound DN
    let (code, out, err) = tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("alice"),
            "-w",
            "correct horse;battery",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{}", user_dn("alice")));
    let (code, _, _) = tool(
        "ldapwhoami",
        &["-x", "-H", &s.url, "-D", &user_dn("alice"), "-w", "nope"],
        &[],
    );
    assert_eq!(code, 49);
    let (code, out, _) = tool("ldapwhoami", &["-x", "-H", &s.url], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "anonymous");
}

#[test]
fn disable_while_serving_takes_effect_on_next_bind() {
    let s = Server::start();
    s.add_user("carol", "carol-pw-1");
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("carol"), "carol-pw-1")
            .expect("bind")
            .rc,
        0
    );
    s.ok(&["user", "disable", "carol"]);
    // The connection bound as carol is closed...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while c.simple_bind(&user_dn("carol"), "carol-pw-1").is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "carol's connection still answers"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // ...and the next bind, on a new one, is refused.
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("carol"), "carol-pw-1")
            .expect("bind")
            .rc,
        49
    );
    let mut admin = s.admin();
    let (_, e) = crate::harness::search(
        &mut admin,
        &user_dn("carol"),
        ldap3::Scope::Base,
        "(objectClass=*)",
        &["ak-active"],
    );
    assert_eq!(e[0].attrs["ak-active"], vec!["FALSE"]);
    s.ok(&["user", "enable", "carol"]);
    assert_eq!(
        c.simple_bind(&user_dn("carol"), "carol-pw-1")
            .expect("bind")
            .rc,
        0
    );

    // a password changed through the CLI works at once, the old one not
    let out = s.cli_stdin(
        &["user", "passwd", "carol", "--password-stdin"],
        Some("carol-pw-2"),
    );
    assert!(out.status.success());
    assert_eq!(
        c.simple_bind(&user_dn("carol"), "carol-pw-1")
            .expect("bind")
            .rc,
        49
    );
    assert_eq!(
        c.simple_bind(&user_dn("carol"), "carol-pw-2")
            .expect("bind")
            .rc,
        0
    );

    // a deleted user cannot bind (its open connection is closed too)
    s.ok(&["user", "delete", "carol"]);
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("carol"), "carol-pw-2")
            .expect("bind")
            .rc,
        49
    );
}

#[test]
fn default_argon2_costs_and_initial_admin() {
    // The real defaults (m=19456 KiB, t=2), as a fresh install runs them.
    let s = Server::start_with(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("admin"), &s.admin_password)
            .expect("bind")
            .rc,
        0
    );
    assert_eq!(
        c.simple_bind(&user_dn("admin"), "not-it").expect("bind").rc,
        49
    );
}

/// A bind password that is not UTF-8 is a wrong password (49, the same
/// text), not a protocol error: the connection stays, and it counts as a
/// failure for the throttle like any other wrong password.
#[test]
fn a_password_that_is_not_utf8_is_a_wrong_password() {
    use crate::raw::{self, Raw};
    use ldap3_proto::proto::{LdapOp, LdapResultCode};

    let mut env = crate::harness::FAST_HASH_ENV.to_vec();
    env.extend_from_slice(&[
        ("PORTCULLIS_THROTTLE_ACCOUNT_FAILURES", "3"),
        ("PORTCULLIS_THROTTLE_ACCOUNT_DELAY_MS", "60000"),
    ]);
    let s = Server::start_with(&env);
    s.add_user("nina", "right");
    let dn = user_dn("nina");
    let wrong = s.conn().simple_bind(&dn, "wrong").expect("bind");
    assert_eq!(wrong.rc, 49);

    // A simple bind whose password is "caf\xe9" (Latin-1, not UTF-8).
    let mut op = raw::tlv(0x02, &[3]);
    op.extend(raw::tlv(0x04, dn.as_bytes()));
    op.extend(raw::tlv(0x80, b"caf\xe9"));
    let mut c = Raw::connect(&s.addr);
    for msgid in [1u8, 2] {
        let mut msg = raw::tlv(0x02, &[msgid]);
        msg.extend(raw::tlv(0x60, &op));
        c.send_bytes(&raw::tlv(0x30, &msg));
        let resp = c.msg();
        assert_eq!(resp.msgid, i32::from(msgid));
        let LdapOp::BindResponse(r) = &resp.op else {
            panic!("not a bind response: {resp:?}");
        };
        assert_eq!(r.res.code, LdapResultCode::InvalidCredentials);
        assert_eq!(r.res.message, wrong.text);
    }
    // The connection stays, anonymous.
    c.send(raw::extended(3, raw::OID_WHOAMI));
    assert_eq!(raw::code(&c.msg()), LdapResultCode::Success);
    // One wrong password and two unreadable ones: the account is
    // throttled, so even the right password is refused now.
    let locked = s.conn().simple_bind(&dn, "right").expect("bind");
    assert_eq!(locked.rc, 49);
}
