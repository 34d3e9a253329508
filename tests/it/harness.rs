//! Starts the real `portcullis` binary on free loopback ports with a
//! temporary data directory, and drives it with real clients.
//!
//! With the PostgreSQL backend ([`postgres_servers`]): one throw-away
//! cluster per test process (the lib's own starter,
//! `portcullis::store::postgres::testing`), a new database per test, and
//! N instances on it, each with a data directory of its own holding the
//! same `server.key` (copied from the first, as an operator would). The
//! CLI helpers talk to each instance through its own admin socket.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const BASE: &str = "dc=example,dc=com";

/// Cheap argon2 costs so suites that create many users stay fast; one test
/// runs the real defaults.
pub const FAST_HASH_ENV: &[(&str, &str)] = &[
    ("PORTCULLIS_AUTH_ARGON2_MEMORY_KIB", "1024"),
    ("PORTCULLIS_AUTH_ARGON2_ITERATIONS", "1"),
];

pub fn user_dn(name: &str) -> String {
    format!("cn={name},ou=users,{BASE}")
}

pub fn group_dn(name: &str) -> String {
    format!("cn={name},ou=groups,{BASE}")
}

/// A running server; stopped (SIGTERM, then kill) on drop.
pub struct Server {
    child: Option<Child>,
    pub data: PathBuf,
    pub url: String,
    /// `host:port` of the LDAP listener.
    pub addr: String,
    pub admin_password: String,
    /// `ldaps://host:port` of the LDAPS listener.
    pub ldaps_url: String,
    /// `host:port` of the HTTP listener (/metrics, /healthz).
    pub http_addr: String,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

/// Servers and CLI runs of these tests keep only the password length
/// bounds (no minimum length, no strength check), so tests about other
/// things can use short passwords; set before the test's own variables, so
/// the password policy's tests (`policy.rs`) give the defaults back with
/// [`DEFAULT_PASSWORD_POLICY`].
const LENGTH_ONLY_PASSWORDS: &[(&str, &str)] = &[
    ("PORTCULLIS_PASSWORD_MIN_LENGTH", "1"),
    ("PORTCULLIS_PASSWORD_MIN_STRENGTH", "0"),
];

/// The shipped password policy (`[password]` defaults).
pub const DEFAULT_PASSWORD_POLICY: &[(&str, &str)] = &[
    ("PORTCULLIS_PASSWORD_MIN_LENGTH", "8"),
    ("PORTCULLIS_PASSWORD_MIN_STRENGTH", "2"),
];

impl Server {
    /// A fresh server with fast hashing.
    pub fn start() -> Server {
        Server::start_with(FAST_HASH_ENV)
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Server::launch(data, env, None);
        s._tmp = Some(tmp);
        s
    }

    fn launch(data: PathBuf, env: Vec<(String, String)>, admin_password: Option<String>) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(&data)
            .args(["serve", "--ldap-addr", "127.0.0.1:0"])
            .args(["--ldaps-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .envs(LENGTH_ONLY_PASSWORDS.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start portcullis");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on stdout.
                    continue;
                }
            }
        });
        let mut password = admin_password;
        let (mut ldaps_addr, mut http_addr) = (String::new(), String::new());
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("server did not report its listener");
            if let Some(rest) = line.strip_prefix("initial admin password: ") {
                password = Some(rest.split_whitespace().next().unwrap_or("").to_string());
            }
            if let Some(addr) = line.strip_prefix("listening ldaps://") {
                ldaps_addr = addr.trim().to_string();
            }
            if let Some(addr) = line.strip_prefix("listening http://") {
                http_addr = addr.trim().to_string();
            }
            if let Some(addr) = line.strip_prefix("listening ldap://") {
                break addr.trim().to_string();
            }
        };
        let admin_password = password
            .or_else(|| std::fs::read_to_string(data.join("initial-admin-password")).ok())
            .map(|p| p.trim().to_string())
            .expect("admin password");
        Server {
            child: Some(child),
            url: format!("ldap://{addr}"),
            addr,
            data,
            admin_password,
            ldaps_url: format!("ldaps://{ldaps_addr}"),
            http_addr,
            env,
            _tmp: None,
        }
    }

    /// A fresh server whose data directory `seed` fills first (through the
    /// library, with no server running: much faster than the CLI for
    /// thousands of entries).
    pub fn start_seeded(env: &[(&str, &str)], seed: impl FnOnce(&Path)) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        seed(&data);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Server::launch(data, env, None);
        s._tmp = Some(tmp);
        s
    }

    /// A server on the PostgreSQL database at `url`, in a new data
    /// directory. With `sibling` (an instance already on that database),
    /// its `server.key` is copied in first and its admin password is the
    /// one to use: the first instance bootstrapped the database.
    pub fn start_postgres(url: &str, env: &[(&str, &str)], sibling: Option<&Server>) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("PORTCULLIS_STORE_BACKEND".into(), "postgres".into()));
        env.push(("PORTCULLIS_STORE_URL".into(), url.into()));
        let admin_password = sibling.map(|s| {
            std::fs::copy(s.data.join("server.key"), data.join("server.key"))
                .expect("copy server.key");
            s.admin_password.clone()
        });
        let mut s = Server::launch(data, env, admin_password);
        s._tmp = Some(tmp);
        s
    }

    /// Kills with SIGKILL (no flush, no cleanup) and waits for the end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process ID of the server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The generated certificate, for LDAPTLS_CACERT.
    pub fn cacert(&self) -> PathBuf {
        self.data.join("tls/cert.pem")
    }

    /// Stops gracefully (SIGTERM) and starts again on the same data.
    pub fn restart(mut self) -> Server {
        self.stop();
        let tmp = self._tmp.take();
        let mut s = Server::launch(
            self.data.clone(),
            self.env.clone(),
            Some(self.admin_password.clone()),
        );
        s._tmp = tmp;
        s
    }

    /// Kills with SIGKILL (no flush, no cleanup) and starts again.
    pub fn crash_and_restart(mut self) -> Server {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let tmp = self._tmp.take();
        let mut s = Server::launch(
            self.data.clone(),
            self.env.clone(),
            Some(self.admin_password.clone()),
        );
        s._tmp = tmp;
        s
    }

    /// SIGTERM and wait; returns the exit status's success.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        // The server drains for up to 10 s; on a loaded machine flushing
        // can take a while longer, so wait well past that.
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Runs the CLI against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, None)
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cli(&self.data, &self.env, args, stdin)
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a user with a password through the CLI.
    pub fn add_user(&self, name: &str, password: &str) {
        let out = self.cli_stdin(&["user", "add", name, "--password-stdin"], Some(password));
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn conn(&self) -> LdapConn {
        LdapConn::with_settings(
            LdapConnSettings::new().set_conn_timeout(Duration::from_secs(10)),
            &self.url,
        )
        .expect("connect")
    }

    /// A connection bound as `dn`.
    pub fn bound(&self, dn: &str, password: &str) -> LdapConn {
        let mut c = self.conn();
        let res = c.simple_bind(dn, password).expect("bind");
        assert_eq!(res.rc, 0, "bind as {dn}: {}", res.text);
        c
    }

    pub fn admin(&self) -> LdapConn {
        self.bound(&user_dn("admin"), &self.admin_password)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new, empty database in this test process's PostgreSQL cluster
/// (started on first use), as a URL; `None`, with a message saying the
/// test is skipped, when PostgreSQL is not installed.
pub fn postgres_database() -> Option<String> {
    let cluster = portcullis::store::postgres::testing::Cluster::shared()?;
    Some(cluster.url(&cluster.create_database()))
}

/// `n` instances on one new PostgreSQL database (see the module
/// documentation); `None` when PostgreSQL is not installed (the test is
/// skipped then).
pub fn postgres_servers(n: usize, env: &[(&str, &str)]) -> Option<Vec<Server>> {
    let url = postgres_database()?;
    let first = Server::start_postgres(&url, env, None);
    let mut servers = Vec::with_capacity(n);
    for _ in 1..n {
        servers.push(Server::start_postgres(&url, env, Some(&first)));
    }
    servers.insert(0, first);
    Some(servers)
}

pub fn run_cli(
    data: &Path,
    env: &[(String, String)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data).args(args);
    cmd.envs(LENGTH_ONLY_PASSWORDS.iter().copied());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run portcullis");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
        pipe.write_all(b"\n").expect("write stdin");
    }
    child.wait_with_output().expect("wait for portcullis")
}

/// Runs a search and returns (result code, entries).
pub fn search(
    c: &mut LdapConn,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> (u32, Vec<SearchEntry>) {
    match c.search(base, scope, filter, attrs.to_vec()) {
        Ok(res) => {
            let ldap3::SearchResult(entries, result) = res;
            (
                result.rc,
                entries.into_iter().map(SearchEntry::construct).collect(),
            )
        }
        Err(e) => panic!("search {filter} under {base}: {e}"),
    }
}

/// Runs an OpenLDAP client tool; returns (exit code, stdout, stderr).
pub fn tool(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(name);
    cmd.args(args).env("LDAPNOINIT", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{name} not runnable (is ldap-utils installed?): {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The resident memory of process `pid` (VmRSS), in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
