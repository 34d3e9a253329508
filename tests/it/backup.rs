//! Online backup and import (issue 16): `export` of a live server is one
//! consistent snapshot that restores to a directory that existed; `import`
//! through the running server is seen by LDAP at once and is all or
//! nothing; scheduled backups appear, stay private and are pruned; secrets
//! never go to a standard output others can read unless forced.

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConn, Mod, Scope};

use crate::harness::{group_dn, run_cli, search, user_dn, Server, BIN, FAST_HASH_ENV};

fn env() -> Vec<(String, String)> {
    FAST_HASH_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One change the writer made, in order.
#[derive(Clone, Debug)]
enum Step {
    AddUser(String),
    AddMember(String),
    DeleteUser(String),
}

/// The users and the members of `churn` after the first `k` steps.
fn state_after(steps: &[Step], k: usize) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut users, mut members) = (BTreeSet::new(), BTreeSet::new());
    for step in &steps[..k] {
        match step {
            Step::AddUser(u) => {
                users.insert(u.clone());
            }
            Step::AddMember(u) => {
                members.insert(u.clone());
            }
            Step::DeleteUser(u) => {
                users.remove(u);
                members.remove(u);
            }
        }
    }
    (users, members)
}

/// Adds users, makes them members of `churn` and deletes older ones over
/// LDAP, one change set at a time, until `stop`; `done` counts the steps
/// that returned.
fn writer(
    mut c: LdapConn,
    done: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("w{i}");
        let dn = user_dn(&name);
        let r = c
            .add(
                &dn,
                vec![
                    (
                        "objectClass",
                        HashSet::from(["top", "inetOrgPerson", "posixAccount"]),
                    ),
                    ("cn", HashSet::from([name.as_str()])),
                    ("uid", HashSet::from([name.as_str()])),
                    ("sn", HashSet::from(["Writer"])),
                ],
            )
            .expect("add");
        assert_eq!(r.rc, 0, "add {name}: {r:?}");
        steps.push(Step::AddUser(name.clone()));
        done.fetch_add(1, Ordering::SeqCst);
        let r = c
            .modify(
                &group_dn("churn"),
                vec![Mod::Add("member", HashSet::from([dn.as_str()]))],
            )
            .expect("modify");
        assert_eq!(r.rc, 0, "member {name}: {r:?}");
        steps.push(Step::AddMember(name.clone()));
        done.fetch_add(1, Ordering::SeqCst);
        if i >= 3 {
            let old = format!("w{}", i - 3);
            let r = c.delete(&user_dn(&old)).expect("delete");
            assert_eq!(r.rc, 0, "delete {old}: {r:?}");
            steps.push(Step::DeleteUser(old));
            done.fetch_add(1, Ordering::SeqCst);
        }
        i += 1;
    }
    steps
}

/// Usernames (without the admin) and `churn`'s member usernames in a
/// JSON backup.
fn backup_state(backup: &serde_json::Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let users = backup["users"].as_array().expect("users");
    let name_of = |id: &serde_json::Value| {
        users
            .iter()
            .find(|u| &u["id"] == id)
            .and_then(|u| u["username"].as_str())
            .map(str::to_string)
    };
    let names = users
        .iter()
        .filter_map(|u| u["username"].as_str())
        .filter(|n| n.starts_with('w'))
        .map(str::to_string)
        .collect();
    let churn = backup["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "churn")
        .expect("churn");
    let members = churn["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| name_of(&m["user"]).expect("every member is in the backup"))
        .collect();
    (names, members)
}

#[test]
fn export_under_writes_restores_to_a_directory_that_existed() {
    let s = Server::start();
    s.ok(&["group", "add", "churn"]);
    s.ok(&["group", "add", "parent"]);
    s.ok(&["group", "add-child", "parent", "churn"]);
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = {
        let (c, done, stop) = (s.admin(), done.clone(), stop.clone());
        std::thread::spawn(move || writer(c, done, stop))
    };
    let tmp = tempfile::tempdir().expect("tmp");
    // Exports taken while the writer runs, each with the range of steps it
    // may hold: those done before it started up to one in flight after.
    let mut exports = Vec::new();
    while done.load(Ordering::SeqCst) < 6 {
        std::thread::yield_now();
    }
    for n in 0..3 {
        let file = tmp.path().join(format!("export-{n}.json"));
        let before = done.load(Ordering::SeqCst);
        let out = s.cli(&[
            "export",
            "--format",
            "json",
            "--with-secrets",
            "--output",
            file.to_str().expect("path"),
        ]);
        let after = done.load(Ordering::SeqCst);
        ok(&out);
        assert_eq!(mode(&file), 0o600);
        exports.push((file, before, after));
    }
    stop.store(true, Ordering::Relaxed);
    let steps = handle.join().expect("writer");
    assert!(
        steps.len() > exports.last().expect("exports").1,
        "the writer ran"
    );

    for (file, before, after) in &exports {
        let backup: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
        let got = backup_state(&backup);
        let moments: Vec<usize> = (*before..=(*after + 1).min(steps.len()))
            .filter(|k| state_after(&steps, *k) == got)
            .collect();
        assert!(
            !moments.is_empty(),
            "{} is no state the writer passed through between steps {before} and {after}: {got:?}",
            file.display()
        );
    }

    // The last export restores offline into a fresh data directory, and
    // the restored server serves exactly what it holds.
    let (file, _, _) = exports.last().expect("export");
    let backup: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
    let (users, members) = backup_state(&backup);
    let password = s.admin_password.clone();
    let file = file.clone();
    let restored = Server::start_seeded(FAST_HASH_ENV, |data| {
        let out = run_cli(
            data,
            &env(),
            &["import", "--format", "json", file.to_str().expect("path")],
            None,
        );
        ok(&out);
        std::fs::write(data.join("initial-admin-password"), &password).expect("password");
    });
    let mut admin = restored.admin();
    let (rc, entries) = search(
        &mut admin,
        "ou=users,dc=example,dc=com",
        Scope::OneLevel,
        "(objectClass=person)",
        &["cn"],
    );
    assert_eq!(rc, 0);
    let served: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.attrs.get("cn").and_then(|v| v.first()).cloned())
        .filter(|n| n.starts_with('w'))
        .collect();
    assert_eq!(served, users, "user count and names as in the snapshot");
    assert_eq!(
        entries.len(),
        backup["users"].as_array().map_or(0, Vec::len)
    );
    let (rc, groups) = search(
        &mut admin,
        "ou=groups,dc=example,dc=com",
        Scope::OneLevel,
        "(objectClass=groupOfNames)",
        &["cn", "member"],
    );
    assert_eq!(rc, 0);
    assert_eq!(
        groups.len(),
        backup["groups"].as_array().map_or(0, Vec::len),
        "group count as in the snapshot"
    );
    let mut churn_members = BTreeSet::new();
    for g in &groups {
        for dn in g.attrs.get("member").into_iter().flatten() {
            let (rc, found) = search(&mut admin, dn, Scope::Base, "(objectClass=*)", &["cn"]);
            assert_eq!(
                (rc, found.len()),
                (0, 1),
                "member {dn} of {} resolves",
                g.dn
            );
            if g.dn == group_dn("churn") {
                churn_members.insert(found[0].attrs["cn"][0].clone());
            }
        }
    }
    assert_eq!(churn_members, members);
}

const GOOD_LDIF: &str = "\
dn: uid=newbie1,ou=People,dc=source,dc=org
objectClass: inetOrgPerson
objectClass: posixAccount
uid: newbie1
cn: New Bie
sn: Bie
uidNumber: 5001
gidNumber: 5001
homeDirectory: /home/newbie1
userPassword: newbie-one-password

dn: uid=newbie2,ou=People,dc=source,dc=org
objectClass: inetOrgPerson
objectClass: posixAccount
uid: newbie2
cn: Other Bie
sn: Bie
uidNumber: 5002
gidNumber: 5002
homeDirectory: /home/newbie2

dn: cn=imported,ou=Groups,dc=source,dc=org
objectClass: groupOfNames
cn: imported
member: uid=newbie1,ou=People,dc=source,dc=org
member: uid=newbie2,ou=People,dc=source,dc=org
";

/// A good user, then one whose name breaks the naming rule (line 13),
/// then a group.
const BAD_LDIF: &str = "\
dn: uid=fresh1,ou=People,dc=source,dc=org
objectClass: inetOrgPerson
objectClass: posixAccount
uid: fresh1
cn: Fresh One
sn: One
uidNumber: 6001
gidNumber: 6001
homeDirectory: /home/fresh1

dn: uid=bad name,ou=People,dc=source,dc=org
objectClass: inetOrgPerson
uid: bad name!
cn: Bad
sn: Name

dn: cn=fresh,ou=Groups,dc=source,dc=org
objectClass: groupOfNames
cn: fresh
member: uid=fresh1,ou=People,dc=source,dc=org
";

#[test]
fn import_while_serving_is_seen_at_once_and_all_or_nothing() {
    let s = Server::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let good = tmp.path().join("good.ldif");
    std::fs::write(&good, GOOD_LDIF).expect("write");
    // An LDAP client connected before the import, as an application is,
    // that has read the group the import fills (the server keeps built
    // group entries between searches).
    s.ok(&["group", "add", "imported"]);
    let mut admin = s.admin();
    let (_, before) = search(
        &mut admin,
        "ou=users,dc=example,dc=com",
        Scope::OneLevel,
        "(uid=newbie*)",
        &["cn"],
    );
    assert!(before.is_empty());
    for _ in 0..2 {
        let (rc, g) = search(
            &mut admin,
            &group_dn("imported"),
            Scope::Base,
            "(objectClass=*)",
            &["member"],
        );
        assert_eq!(rc, 0);
        assert!(!g[0].attrs.contains_key("member"));
    }

    let out = s.cli(&["import", good.to_str().expect("path")]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("users: 2 created"), "{text}");
    assert!(text.contains("2 memberships added"), "{text}");
    // Right after the command returns: entries, memberships, and a bind
    // with the imported password.
    let (rc, e) = search(
        &mut admin,
        &user_dn("newbie1"),
        Scope::Base,
        "(objectClass=*)",
        &["uidNumber", "memberOf"],
    );
    assert_eq!(rc, 0);
    assert_eq!(e[0].attrs["uidNumber"], vec!["5001"]);
    assert_eq!(e[0].attrs["memberOf"], vec![group_dn("imported")]);
    let (_, g) = search(
        &mut admin,
        &group_dn("imported"),
        Scope::Base,
        "(objectClass=*)",
        &["member"],
    );
    assert_eq!(g[0].attrs["member"].len(), 2);
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("newbie1"), "newbie-one-password")
            .expect("bind")
            .rc,
        0
    );

    // One bad entry: nothing of the file is written, and the error says
    // on which line.
    let bad = tmp.path().join("bad.ldif");
    std::fs::write(&bad, BAD_LDIF).expect("write");
    let out = s.cli(&["import", bad.to_str().expect("path")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("line") && l.contains("13") && l.contains("error")),
        "the problem carries its line: {err}"
    );
    for dn in [user_dn("fresh1"), group_dn("fresh")] {
        let (rc, e) = search(&mut admin, &dn, Scope::Base, "(objectClass=*)", &["cn"]);
        assert!(rc == 32 && e.is_empty(), "{dn} must not exist: {rc}");
    }
    // The file arrives on standard input too, and an LDIF syntax error
    // names its line.
    let out = s.cli_stdin(&["import", "-"], Some("dn: uid=x,dc=y\nthis is no line\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn metric(addr: &str, name: &str) -> Option<f64> {
    http_get(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .and_then(|v| v.trim().parse().ok())
}

fn backups(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("portcullis-backup-") && n.ends_with(".json"))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[test]
fn scheduled_backups_are_private_pruned_and_measured() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("nested").join("backups");
    let dir_text = dir.to_str().expect("path").to_string();
    let mut env: Vec<(&str, &str)> = FAST_HASH_ENV.to_vec();
    env.extend([
        ("PORTCULLIS_BACKUP_DIR", dir_text.as_str()),
        ("PORTCULLIS_BACKUP_INTERVAL_SECS", "1"),
        ("PORTCULLIS_BACKUP_KEEP", "2"),
    ]);
    let s = Server::start_with(&env);
    s.add_user("alice", "alice-pw-1");
    // Wait for several backups: more names seen than are kept.
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "backups seen so far: {seen:?}");
        let now = backups(&dir);
        assert!(now.len() <= 2, "at most keep=2 backups are kept: {now:?}");
        seen.extend(now);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mode(&dir), 0o700);
    let kept = backups(&dir);
    assert!(!kept.is_empty() && kept.len() <= 2, "{kept:?}");
    let newest = dir.join(kept.last().expect("a backup"));
    assert_eq!(mode(&newest), 0o600);
    let last = metric(
        &s.http_addr,
        "portcullis_backup_last_success_timestamp_seconds",
    )
    .expect("metric");
    assert!(last > 1.7e9, "last success is a unix time: {last}");
    assert_eq!(
        metric(&s.http_addr, "portcullis_backup_failures_total"),
        Some(0.0)
    );

    // A scheduled backup is the restorable document, with secrets.
    let backup: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&newest).expect("read")).expect("json");
    assert_eq!(backup["format"], "portcullis-backup");
    assert_eq!(backup["secrets"], true);
    let fresh = tmp.path().join("fresh");
    let out = run_cli(
        &fresh,
        &self::env(),
        &["import", "--format", "json", newest.to_str().expect("path")],
        None,
    );
    ok(&out);
    let out = run_cli(&fresh, &self::env(), &["user", "show", "alice"], None);
    ok(&out);
}

#[test]
fn scheduled_backup_failures_are_counted() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A file where the directory should be: every backup fails.
    let not_a_dir = tmp.path().join("backups");
    std::fs::write(&not_a_dir, "").expect("write");
    let dir_text = not_a_dir.to_str().expect("path").to_string();
    let mut env: Vec<(&str, &str)> = FAST_HASH_ENV.to_vec();
    env.extend([
        ("PORTCULLIS_BACKUP_DIR", dir_text.as_str()),
        ("PORTCULLIS_BACKUP_INTERVAL_SECS", "1"),
    ]);
    let s = Server::start_with(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&s.http_addr, "portcullis_backup_failures_total").unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "no failure counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric(
            &s.http_addr,
            "portcullis_backup_last_success_timestamp_seconds"
        ),
        Some(0.0)
    );
    // The server goes on serving.
    let mut admin = s.admin();
    let (rc, _) = search(
        &mut admin,
        &user_dn("admin"),
        Scope::Base,
        "(objectClass=*)",
        &["cn"],
    );
    assert_eq!(rc, 0);
}

/// Runs `export --with-secrets` (plus `extra`) with standard output
/// redirected to `file`.
fn export_to(s: &Server, file: &Path, extra: &[&str]) -> std::process::Output {
    let target = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)
        .expect("open");
    Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.data)
        .args(["export", "--with-secrets"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::from(target))
        .stderr(Stdio::piped())
        .output()
        .expect("run portcullis")
}

#[test]
fn secrets_refused_on_a_readable_stdout_unless_forced() {
    let s = Server::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("out.ldif");
    std::fs::write(&file, "").expect("create");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let out = export_to(&s, &file, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--force") && err.contains("others can read"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).expect("read"), b"", "nothing written");

    let out = export_to(&s, &file, &["--force"]);
    ok(&out);
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("userPassword: {ARGON2}"), "{text}");

    // A terminal is refused too (`script` gives the command one).
    let command = format!(
        "{BIN} --data-dir {} export --with-secrets",
        s.data.to_str().expect("path")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(!out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("terminal") && !shown.contains("userPassword"),
        "{shown}"
    );

    // A private file needs no --force; nor does export without secrets.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    ok(&export_to(&s, &file, &[]));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.data)
        .args(["export"])
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .expect("open"),
        ))
        .output()
        .expect("run");
    ok(&out);
}

/// A backup of the running server restored into it (a rollback): the
/// deleted user comes back with its password and app password, and binds
/// at once.
#[test]
fn backup_restores_into_the_running_server() {
    let s = Server::start();
    s.add_user("bob", "Zebra-Quartz-91!");
    let out = s.ok(&["app-password", "add", "bob", "--name", "mail", "--json"]);
    let ap: serde_json::Value = serde_json::from_str(&out).expect("json");
    let secret = ap["secret"].as_str().expect("secret").to_string();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("b.json");
    let path = file.to_str().expect("path");
    ok(&s.cli(&[
        "export",
        "--format",
        "json",
        "--with-secrets",
        "--output",
        path,
    ]));
    s.ok(&["user", "delete", "bob"]);
    let mut c = s.conn();
    assert_eq!(
        c.simple_bind(&user_dn("bob"), &secret).expect("bind").rc,
        49
    );

    let out = s.cli(&["import", "--format", "json", path]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 app passwords"));
    for password in ["Zebra-Quartz-91!", secret.as_str()] {
        assert_eq!(
            c.simple_bind(&user_dn("bob"), password).expect("bind").rc,
            0
        );
    }
}
