//! The shipped password policy and the value syntaxes, on every write
//! path: the CLI through the admin socket and on a stopped server, LDAP
//! add and modify, Password Modify (`ldappasswd`), and self-service
//! loginShell, telephone numbers and mail.

use std::collections::HashSet;

use ldap3::{LdapConn, Mod, Scope};

use crate::harness::{search, tool, user_dn, Server, DEFAULT_PASSWORD_POLICY, FAST_HASH_ENV};

/// Passwords the default policy refuses: too short, only spaces, common,
/// a keyboard walk, the user's own name with digits.
const WEAK: &[&str] = &["x", "        ", "password", "qwertyuiop", "alice2026"];
const ALICE_PW: &str = "Tea-at-the-Mad-Hatter's";

fn server() -> Server {
    let env: Vec<(&str, &str)> = FAST_HASH_ENV
        .iter()
        .chain(DEFAULT_PASSWORD_POLICY)
        .copied()
        .collect();
    Server::start_with(&env)
}

fn binds(s: &Server, name: &str, pw: &str) -> bool {
    let mut c = s.conn();
    c.simple_bind(&user_dn(name), pw)
        .map(|r| r.rc == 0)
        .unwrap_or(false)
}

fn rc_of_modify(c: &mut LdapConn, dn: &str, attr: &str, value: &str) -> u32 {
    c.modify(dn, vec![Mod::Replace(attr, HashSet::from([value]))])
        .expect("modify sent")
        .rc
}

#[test]
fn weak_passwords_are_refused_on_every_path() {
    let mut s = server();

    // CLI (through the admin socket): nothing is created or changed.
    for weak in WEAK {
        let out = s.cli_stdin(&["user", "add", "alice", "--password-stdin"], Some(weak));
        assert!(!out.status.success(), "user add with {weak:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("password"), "{weak:?}: {err}");
    }
    let out = s.cli(&["user", "show", "alice"]);
    assert!(!out.status.success(), "alice was created by a refused add");
    s.add_user("alice", ALICE_PW);
    for weak in WEAK {
        let out = s.cli_stdin(&["user", "passwd", "alice", "--password-stdin"], Some(weak));
        assert!(!out.status.success(), "user passwd with {weak:?} succeeded");
    }
    assert!(binds(&s, "alice", ALICE_PW));

    // Password Modify by the user: constraintViolation (19), the old
    // password keeps working and the weak one never does.
    let dn = user_dn("alice");
    for weak in WEAK {
        let (code, out, err) = tool(
            "ldappasswd",
            &[
                "-x", "-H", &s.url, "-D", &dn, "-w", ALICE_PW, "-a", ALICE_PW, "-s", weak,
            ],
            &[],
        );
        // ldappasswd exits 1 and prints the result code.
        assert_ne!(code, 0, "ldappasswd -s {weak:?}: {out} {err}");
        assert!(
            format!("{out}{err}").contains("Constraint violation (19)"),
            "ldappasswd -s {weak:?}: {out} {err}"
        );
        assert!(!binds(&s, "alice", weak), "{weak:?} binds");
    }
    assert!(binds(&s, "alice", ALICE_PW));
    let (code, _, err) = tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &dn,
            "-w",
            ALICE_PW,
            "-a",
            ALICE_PW,
            "-s",
            "Down the rabbit hole we go",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(binds(&s, "alice", "Down the rabbit hole we go"));

    // An admin's LDAP add and modify of a cleartext userPassword: 19;
    // a hash cannot be checked and is stored as given.
    let mut admin = s.admin();
    let add = admin
        .add(
            &user_dn("bob"),
            vec![
                ("objectClass", HashSet::from(["inetOrgPerson"])),
                ("sn", HashSet::from(["Builder"])),
                ("userPassword", HashSet::from(["12345678"])),
            ],
        )
        .expect("add sent");
    assert_eq!(add.rc, 19, "{add:?}");
    assert_eq!(
        rc_of_modify(&mut admin, &dn, "userPassword", "password"),
        19
    );
    assert!(!binds(&s, "alice", "password"));
    assert_eq!(
        rc_of_modify(
            &mut admin,
            &dn,
            "userPassword",
            // {SSHA} of "password", salt "saltsalt"
            "{SSHA}yrht1iYXEIkejLVu42JWkadd80RzYWx0c2FsdA=="
        ),
        0
    );
    assert!(binds(&s, "alice", "password"));

    // The same policy when the server is stopped and the CLI opens the
    // store itself.
    assert!(s.stop());
    let out = s.cli_stdin(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("password"),
    );
    assert!(
        !out.status.success(),
        "offline user passwd accepted a weak password"
    );
    let out = s.cli_stdin(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("Curiouser and curiouser!"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shells_phones_and_mail_keep_their_syntax() {
    let s = server();
    s.add_user("alice", ALICE_PW);
    let dn = user_dn("alice");
    let mut me = s.bound(&dn, ALICE_PW);

    // Self-service loginShell: only a shell of accounts.login_shells.
    assert_eq!(rc_of_modify(&mut me, &dn, "loginShell", "/bin/zsh"), 0);
    assert_eq!(rc_of_modify(&mut me, &dn, "loginShell", "/tmp/evil"), 19);
    // Not a path at all (a passwd-line forgery): invalid syntax (21).
    assert_eq!(rc_of_modify(&mut me, &dn, "loginShell", "x:0:0"), 21);
    assert_eq!(
        rc_of_modify(&mut me, &dn, "telephoneNumber", "+49 30 1234-567"),
        0
    );
    assert_eq!(
        rc_of_modify(&mut me, &dn, "telephoneNumber", "call me maybe"),
        21
    );
    assert_eq!(
        rc_of_modify(&mut me, &dn, "mobile", "<script>1</script>"),
        21
    );
    assert_eq!(rc_of_modify(&mut me, &dn, "mail", "not-an-address"), 21);
    let (rc, entries) = search(&mut me, &dn, Scope::Base, "(objectClass=*)", &["*"]);
    assert_eq!(rc, 0);
    let entry = &entries[0];
    assert_eq!(entry.attrs["loginShell"], ["/bin/zsh"]);
    assert_eq!(entry.attrs["telephoneNumber"], ["+49 30 1234-567"]);
    assert!(!entry.attrs.contains_key("mobile"));

    // An admin may set any shell path, but not a broken one.
    let mut admin = s.admin();
    assert_eq!(
        rc_of_modify(&mut admin, &dn, "loginShell", "/opt/site/bin/restricted-sh"),
        0
    );
    assert_eq!(rc_of_modify(&mut admin, &dn, "loginShell", "/bin/sh:0"), 21);
    assert_eq!(rc_of_modify(&mut admin, &dn, "gecos", "Alice:0:0:root"), 21);

    // The CLI's set-attr checks the same syntax.
    for (key, bad) in [
        ("loginShell", "x:0:0"),
        ("homeDirectory", "home/alice"),
        ("telephoneNumber", "call me"),
        ("mail", "nobody"),
    ] {
        let out = s.cli(&["user", "set-attr", "alice", key, bad]);
        assert!(!out.status.success(), "set-attr {key} {bad:?} succeeded");
    }
    s.ok(&["user", "set-attr", "alice", "mobile", "+1 555 0100"]);
}
