//! LDAP writes through OpenLDAP's ldapadd, ldapmodify, ldapdelete and
//! ldapmodrdn: what admins may do, what ordinary users and anonymous
//! clients are refused, and the result codes of bad requests.

use std::io::Write;
use std::process::{Command, Stdio};

use ldap3::Scope;

use crate::harness::{group_dn, search, user_dn, Server, BASE};

/// Runs an OpenLDAP tool with `input` on stdin; with `cacert`, libldap
/// reads LDAPTLS_* from the environment (for -ZZ). Returns (exit code,
/// stdout + stderr). The tools exit with the LDAP result code.
fn run(name: &str, args: &[&str], input: Option<&str>, cacert: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(name);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match cacert {
        Some(ca) => {
            cmd.env_remove("LDAPNOINIT")
                .env("LDAPCONF", "/dev/null")
                .env("LDAPRC", "/dev/null")
                .env("LDAPTLS_CACERT", ca)
                .env("LDAPTLS_REQCERT", "demand");
        }
        None => {
            cmd.env("LDAPNOINIT", "1");
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{name} not runnable (is ldap-utils installed?): {e}"));
    if let Some(text) = input {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Bind arguments for `-x -H url [-D dn -w pw]`.
fn auth<'a>(s: &'a Server, who: Option<(&'a str, &'a str)>) -> Vec<&'a str> {
    let mut args = vec!["-x", "-H", s.url.as_str()];
    if let Some((dn, pw)) = who {
        args.extend(["-D", dn, "-w", pw]);
    }
    args
}

fn ldapmodify(s: &Server, who: Option<(&str, &str)>, ldif: &str) -> (i32, String) {
    run("ldapmodify", &auth(s, who), Some(ldif), None)
}

fn ldapadd(s: &Server, who: Option<(&str, &str)>, ldif: &str) -> (i32, String) {
    run("ldapadd", &auth(s, who), Some(ldif), None)
}

fn ldapdelete(s: &Server, who: Option<(&str, &str)>, dn: &str) -> (i32, String) {
    let mut args = auth(s, who);
    args.push(dn);
    run("ldapdelete", &args, None, None)
}

fn ldapmodrdn(s: &Server, who: Option<(&str, &str)>, dn: &str, rdn: &str) -> (i32, String) {
    let mut args = auth(s, who);
    args.extend(["-r", dn, rdn]);
    run("ldapmodrdn", &args, None, None)
}

/// `ldapwhoami` as (dn, password): (exit code, output).
fn whoami(s: &Server, dn: &str, pw: &str) -> (i32, String) {
    run("ldapwhoami", &auth(s, Some((dn, pw))), None, None)
}

/// The values of `attr` of the entry at `dn`, read as admin; `None` when
/// the entry does not exist.
fn values(s: &Server, dn: &str, attr: &str) -> Option<Vec<String>> {
    let mut c = s.admin();
    let (rc, entries) = search(&mut c, dn, Scope::Base, "(objectClass=*)", &[attr, "+"]);
    if rc == 32 {
        return None;
    }
    assert_eq!(rc, 0, "search {dn}");
    let e = entries.into_iter().next()?;
    Some(
        e.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    )
}

fn lower(v: Option<Vec<String>>) -> Vec<String> {
    v.unwrap_or_default()
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

#[test]
fn admin_adds_modifies_renames_and_deletes() {
    let s = Server::start();
    let admin_dn = user_dn("admin");
    let admin = Some((admin_dn.as_str(), s.admin_password.as_str()));
    let carol = user_dn("carol");

    // Add a user with a password in clear; it is hashed and binds at once.
    let (code, out) = ldapadd(
        &s,
        admin,
        &format!(
            "dn: {carol}\nobjectClass: top\nobjectClass: inetOrgPerson\nobjectClass: \
             posixAccount\ncn: carol\nuid: carol\nsn: Smith\ndisplayName: Carol Smith\n\
             mail: carol@example.com\nloginShell: /bin/zsh\nuserPassword: carol-pw-1\n"
        ),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = whoami(&s, &carol, "carol-pw-1");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{carol}")), "{out}");
    assert_eq!(
        values(&s, &carol, "loginShell"),
        Some(vec!["/bin/zsh".into()])
    );
    // The password never shows in the entry.
    assert_eq!(values(&s, &carol, "userPassword"), Some(vec![]));

    // A group with members; memberOf follows at once.
    let staff = group_dn("staff");
    let (code, out) = ldapadd(
        &s,
        admin,
        &format!(
            "dn: {staff}\nobjectClass: groupOfNames\nobjectClass: posixGroup\ncn: staff\n\
             description: Everyone\nmember: {carol}\n"
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        lower(values(&s, &carol, "memberOf")),
        vec![staff.to_ascii_lowercase()]
    );

    // Replace mail; add one member and delete another in one request.
    let (code, out) = ldapmodify(
        &s,
        admin,
        &format!(
            "dn: {carol}\nchangetype: modify\nreplace: mail\nmail: csmith@example.com\n\n\
             dn: {staff}\nchangetype: modify\nadd: member\nmember: {admin_dn}\n-\n\
             delete: member\nmember: {carol}\n-\n"
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        values(&s, &carol, "mail"),
        Some(vec!["csmith@example.com".into()])
    );
    assert_eq!(
        lower(values(&s, &staff, "member")),
        vec![admin_dn.to_ascii_lowercase()]
    );
    assert_eq!(values(&s, &carol, "memberOf"), Some(vec![]));

    // An admin sets the password: the new one binds, the old one no more.
    let (code, out) = ldapmodify(
        &s,
        admin,
        &format!(
            "dn: {carol}\nchangetype: modify\nreplace: userPassword\nuserPassword: carol-pw-2\n"
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(whoami(&s, &carol, "carol-pw-1").0, 49);
    assert_eq!(whoami(&s, &carol, "carol-pw-2").0, 0);

    // Rename: the new DN binds, the old one is gone, and the groups she
    // is in list her new DN at once.
    let (code, out) = ldapmodify(
        &s,
        admin,
        &format!("dn: {staff}\nchangetype: modify\nadd: member\nmember: {carol}\n"),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(lower(values(&s, &staff, "member")).len(), 2);
    let caroline = user_dn("caroline");
    let (code, out) = ldapmodrdn(&s, admin, &carol, "cn=caroline");
    assert_eq!(code, 0, "{out}");
    let mut members = lower(values(&s, &staff, "member"));
    members.sort();
    let mut expected = vec![admin_dn.to_ascii_lowercase(), caroline.to_ascii_lowercase()];
    expected.sort();
    assert_eq!(members, expected);
    let (code, out) = whoami(&s, &caroline, "carol-pw-2");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{caroline}")), "{out}");
    assert_eq!(whoami(&s, &carol, "carol-pw-2").0, 49);
    assert_eq!(values(&s, &carol, "cn"), None);
    assert_eq!(values(&s, &caroline, "uid"), Some(vec!["caroline".into()]));
    // A group rename keeps its members; without -r (deleteoldrdn false)
    // too: the old name is not kept, cn is the name.
    let mut args = auth(&s, admin);
    args.extend([staff.as_str(), "cn=team"]);
    let (code, out) = run("ldapmodrdn", &args, None, None);
    assert_eq!(code, 0, "{out}");
    let mut members = lower(values(&s, &group_dn("team"), "member"));
    members.sort();
    assert_eq!(members, expected);
    // Members' memberOf names the group's new DN at once.
    assert_eq!(
        lower(values(&s, &caroline, "memberOf")),
        vec![group_dn("team").to_ascii_lowercase()]
    );
    assert_eq!(
        values(&s, &group_dn("team"), "cn"),
        Some(vec!["team".into()])
    );
    assert_eq!(values(&s, &staff, "cn"), None);

    // Delete: the user is gone and cannot bind.
    let (code, out) = ldapdelete(&s, admin, &caroline);
    assert_eq!(code, 0, "{out}");
    assert_eq!(values(&s, &caroline, "cn"), None);
    assert_eq!(whoami(&s, &caroline, "carol-pw-2").0, 49);
    let (code, out) = ldapdelete(&s, admin, &group_dn("team"));
    assert_eq!(code, 0, "{out}");

    // The CLI sees the same store.
    let out = s.cli(&["user", "show", "caroline"]);
    assert!(!out.status.success());
}

#[test]
fn refused_requests_have_rfc_4511_codes() {
    let s = Server::start();
    s.add_user("dave", "dave-pw-1");
    let admin_dn = user_dn("admin");
    let admin = Some((admin_dn.as_str(), s.admin_password.as_str()));
    let dave = user_dn("dave");
    let person = "objectClass: inetOrgPerson\nobjectClass: posixAccount\n";

    let cases: Vec<(&str, String, i32)> = vec![
        // existing entry
        ("existing", format!("dn: {dave}\n{person}"), 68),
        // missing parent, and a DN outside the tree
        (
            "missing parent",
            format!("dn: cn=x,ou=people,{BASE}\n{person}"),
            32,
        ),
        ("outside", format!("dn: cn=x,dc=other,dc=org\n{person}"), 32),
        // wrong place under the base
        ("naming", format!("dn: ou=people,{BASE}\n{person}"), 64),
        // unknown attribute
        (
            "unknown attribute",
            format!("dn: {}\n{person}favouriteColour: blue\n", user_dn("x")),
            17,
        ),
        // no or unknown objectClass
        ("no class", format!("dn: {}\nsn: x\n", user_dn("x")), 65),
        // server-maintained attribute
        (
            "operational",
            format!("dn: {}\n{person}entryUUID: 1\n", user_dn("x")),
            19,
        ),
        // wrong syntax
        (
            "syntax",
            format!("dn: {}\n{person}uidNumber: lots\n", user_dn("x")),
            21,
        ),
    ];
    for (what, ldif, want) in cases {
        let (code, out) = ldapadd(&s, admin, &ldif);
        assert_eq!(code, want, "{what}: {out}");
    }
    // None of them created anything.
    assert_eq!(values(&s, &user_dn("x"), "cn"), None);

    // Delete of a value that is not there: 16; add of one that is: 20.
    let (code, out) = ldapmodify(
        &s,
        admin,
        &format!("dn: {dave}\nchangetype: modify\ndelete: telephoneNumber\ntelephoneNumber: 1\n"),
    );
    assert_eq!(code, 16, "{out}");
    let (code, out) = ldapmodify(
        &s,
        admin,
        &format!(
            "dn: {}\nchangetype: modify\nadd: member\nmember: {admin_dn}\n",
            group_dn("admins")
        ),
    );
    assert_eq!(code, 20, "{out}");
    // Modify of an entry that does not exist: 32.
    let (code, out) = ldapmodify(
        &s,
        admin,
        &format!(
            "dn: {}\nchangetype: modify\nreplace: sn\nsn: x\n",
            user_dn("ghost")
        ),
    );
    assert_eq!(code, 32, "{out}");

    // Non-leaf delete: 66; the last admin and the admin group: 53.
    assert_eq!(ldapdelete(&s, admin, &format!("ou=users,{BASE}")).0, 66);
    assert_eq!(ldapdelete(&s, admin, BASE).0, 66);
    assert_eq!(ldapdelete(&s, admin, &admin_dn).0, 53);
    assert_eq!(ldapdelete(&s, admin, &group_dn("admins")).0, 53);
    assert_eq!(ldapdelete(&s, admin, &user_dn("ghost")).0, 32);
    // Rename onto an existing name: 68; to another container: 53.
    assert_eq!(ldapmodrdn(&s, admin, &dave, "cn=admin").0, 68);
    let (code, out) = run(
        "ldapmodrdn",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &admin_dn,
            "-w",
            &s.admin_password,
            "-s",
            &format!("ou=groups,{BASE}"),
            &dave,
            "cn=dave",
        ],
        None,
        None,
    );
    assert_eq!(code, 53, "{out}");
    // dave is intact.
    assert_eq!(whoami(&s, &dave, "dave-pw-1").0, 0);
}

#[test]
fn ordinary_users_and_anonymous_are_refused() {
    let s = Server::start();
    s.add_user("dave", "dave-pw-1");
    s.add_user("erin", "erin-pw-1");
    let dave_dn = user_dn("dave");
    let erin = user_dn("erin");
    let dave = Some((dave_dn.as_str(), "dave-pw-1"));
    let new_user = format!(
        "dn: {}\nobjectClass: inetOrgPerson\nsn: x\nuserPassword: x\n",
        user_dn("mallory")
    );

    // erin's entry and the admins group, which dave may not read, are
    // missing for him: 32 (they were 50 before issue 16; tests/it/
    // disclosure.rs compares them with missing entries). Anonymous: 50.
    for (who, hidden) in [(dave, 32), (None, 50)] {
        let label = if who.is_some() { "dave" } else { "anonymous" };
        assert_eq!(ldapadd(&s, who, &new_user).0, 50, "{label} add");
        assert_eq!(ldapdelete(&s, who, &erin).0, hidden, "{label} delete");
        assert_eq!(
            ldapmodrdn(&s, who, &erin, "cn=erin2").0,
            hidden,
            "{label} modrdn"
        );
        let (code, out) = ldapmodify(
            &s,
            who,
            &format!("dn: {erin}\nchangetype: modify\nreplace: displayName\ndisplayName: pwned\n"),
        );
        assert_eq!(code, hidden, "{label} modify: {out}");
        // A group, even one the user is in, is not theirs to change.
        let (code, out) = ldapmodify(
            &s,
            who,
            &format!(
                "dn: {}\nchangetype: modify\nadd: member\nmember: {dave_dn}\n",
                group_dn("admins")
            ),
        );
        assert_eq!(code, hidden, "{label} join admins: {out}");
    }
    assert_eq!(values(&s, &user_dn("mallory"), "cn"), None);
    assert_eq!(values(&s, &erin, "displayName"), Some(vec![]));
    assert_eq!(
        values(&s, &group_dn("admins"), "member").map(|m| m.len()),
        Some(1)
    );

    // dave changes his own displayName; not his uidNumber or password.
    let (code, out) = ldapmodify(
        &s,
        dave,
        &format!("dn: {dave_dn}\nchangetype: modify\nreplace: displayName\ndisplayName: Dave D.\n"),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        values(&s, &dave_dn, "displayName"),
        Some(vec!["Dave D.".into()])
    );
    let (code, out) = ldapmodify(
        &s,
        dave,
        &format!("dn: {dave_dn}\nchangetype: modify\nreplace: uidNumber\nuidNumber: 0\n"),
    );
    assert_eq!(code, 50, "{out}");
    let (code, out) = ldapmodify(
        &s,
        dave,
        &format!("dn: {dave_dn}\nchangetype: modify\nreplace: userPassword\nuserPassword: x\n"),
    );
    assert_eq!(code, 50, "{out}");
    assert!(out.contains("Password Modify"), "{out}");
    assert_eq!(whoami(&s, &dave_dn, "dave-pw-1").0, 0);

    // The same rules after StartTLS.
    let ca = s.cacert();
    let ca = ca.to_str().expect("path");
    let tls_args = [
        "-x",
        "-ZZ",
        "-H",
        s.url.as_str(),
        "-D",
        &dave_dn,
        "-w",
        "dave-pw-1",
    ];
    let (code, out) = run(
        "ldapmodify",
        &tls_args,
        Some(&format!(
            "dn: {dave_dn}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/fish\n"
        )),
        Some(ca),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        values(&s, &dave_dn, "loginShell"),
        Some(vec!["/bin/fish".into()])
    );
    let (code, out) = run(
        "ldapmodify",
        &tls_args,
        Some(&format!(
            "dn: {dave_dn}\nchangetype: modify\nreplace: homeDirectory\nhomeDirectory: /root\n"
        )),
        Some(ca),
    );
    assert_eq!(code, 50, "{out}");
}
