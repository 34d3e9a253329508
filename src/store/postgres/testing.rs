//! A throw-away PostgreSQL cluster for the tests, and the conformance
//! suite's [`Harness`] over it.
//!
//! Reachable from the lib's tests (`cfg(test)`) and, behind the
//! `test-cluster` feature that the crate's self dev-dependency turns on,
//! from the integration tests (`tests/it/harness.rs`), so both start
//! clusters the same way. Not for production builds.
//!
//! The first test that needs it starts one cluster for the whole test
//! process ([`Cluster::get`], or [`Cluster::shared`] for tests that skip
//! without PostgreSQL): `initdb` into a new directory under the temporary
//! directory, then `pg_ctl start` on a free loopback port with its Unix
//! socket in that directory, `fsync` off (nothing here must survive a
//! machine crash). PostgreSQL refuses to run as root, so as root both run
//! as the `postgres` user (`runuser -u postgres --`); otherwise as the
//! caller. The test harness runs no destructor for a static, so a small
//! reaper (`sh`) started with the cluster waits for the test process to
//! end, then stops the cluster (`pg_ctl stop -m immediate`) and removes
//! the directory. Each [`Cluster::create_database`] (and each
//! `Harness::fresh`) creates a new database in it.
//!
//! A test that stops its database, or needs other server settings (TLS),
//! starts a cluster of its own ([`Cluster::start_own`]): stopped and
//! removed when dropped, and can be stopped and started again.
//!
//! The binaries come from `PORTCULLIS_PG_BINDIR`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package, which
//! `scripts/test` installs), else `PATH`.

// Test support only (cfg(test) or the test-cluster feature): a cluster
// that cannot start or a statement that fails is the test's failure.
#![allow(clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A running test cluster.
pub struct Cluster {
    port: u16,
    bindir: Option<PathBuf>,
    /// Whether its programs run as the `postgres` user.
    root: bool,
    /// Its directory (data directory, log, Unix socket).
    dir: PathBuf,
    /// The server's options (`pg_ctl -o`), to start it again.
    options: String,
    /// Stopped and removed on drop (own clusters; the shared one is
    /// stopped by its reaper).
    owned: bool,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The settings of every test cluster: nothing here must survive a
/// machine crash (a crash of the server is another matter: see
/// [`Cluster::start_own`]); enough connections for several instances'
/// pools.
const BASE_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "300"),
];

fn bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PORTCULLIS_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// Whether PostgreSQL's server programs are installed (see the
    /// module documentation for where they are looked for).
    pub fn installed() -> bool {
        match bindir() {
            Some(dir) => dir.join("pg_ctl").exists(),
            None => Command::new("pg_ctl")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    /// The cluster of this test process, started on first use; `None`
    /// (after saying so on stderr) when PostgreSQL is not installed, for
    /// tests that skip then. A cluster that is installed but does not
    /// start fails the test.
    pub fn shared() -> Option<&'static Cluster> {
        if !Cluster::installed() {
            eprintln!(
                "SKIPPED: no PostgreSQL server programs (initdb, pg_ctl) found: install Debian's \
                 `postgresql` package (scripts/test does as root) or set PORTCULLIS_PG_BINDIR"
            );
            return None;
        }
        Some(Cluster::get())
    }

    /// The cluster of this test process, started on first use.
    pub fn get() -> &'static Cluster {
        // Never stopped while in use, so commits need not wait for the
        // WAL.
        let settings = [("synchronous_commit", "off")];
        match CLUSTER.get_or_init(|| Cluster::start(&settings, &[], false)) {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start the test PostgreSQL cluster: {e}\n\
                 (install Debian's `postgresql` package, e.g. with scripts/test as root, or set \
                 PORTCULLIS_PG_BINDIR)"
            ),
        }
    }

    /// A cluster of the caller's own, with server `settings` on top of
    /// the usual ones and `files` (name, content) written into its data
    /// directory first (mode 0600, e.g. `server.crt` and `server.key`
    /// for `ssl=on`). Stopped and removed when dropped. Commits are in
    /// the WAL when they return, so [`Cluster::stop`] (immediate, like a
    /// crash of the server) loses none.
    pub fn start_own(settings: &[(&str, &str)], files: &[(&str, &[u8])]) -> Cluster {
        Cluster::start(settings, files, true)
            .unwrap_or_else(|e| panic!("cannot start a PostgreSQL cluster: {e}"))
    }

    /// A cluster of the caller's own with `ssl=on` and a certificate for
    /// `localhost` (DNS name only, so connecting to 127.0.0.1 by address
    /// does not match it), with two PEM files beside it: the CA that
    /// signed it, and another CA that signed nothing of it.
    pub fn start_tls() -> (Cluster, PathBuf, PathBuf) {
        let (ca, cert, key) = tls_material("database CA");
        let (other_ca, _, _) = tls_material("another CA");
        let cluster = Cluster::start_own(
            &[("ssl", "on")],
            &[
                ("server.crt", cert.as_bytes()),
                ("server.key", key.as_bytes()),
            ],
        );
        let (root, wrong_root) = (cluster.dir.join("ca.pem"), cluster.dir.join("other-ca.pem"));
        std::fs::write(&root, ca).expect("write ca.pem");
        std::fs::write(&wrong_root, other_ca).expect("write other-ca.pem");
        (cluster, root, wrong_root)
    }

    fn program(&self, name: &str) -> String {
        match &self.bindir {
            Some(d) => d.join(name).display().to_string(),
            None => name.to_string(),
        }
    }

    /// A command running `program` as the cluster's owner.
    fn as_owner(root: bool, program: &str) -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(mut cmd: Command, what: &str) -> Result<String, String> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes `content` to `name` in the data directory as the cluster's
    /// owner, readable by it alone (PostgreSQL refuses a key file others
    /// can read).
    fn write_file(&self, name: &str, content: &[u8]) -> Result<(), String> {
        let path = self.data().join(name);
        let mut cmd = Cluster::as_owner(self.root, "sh");
        cmd.args(["-c", "umask 077 && cat > \"$1\"", "sh"])
            .arg(&path)
            .stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("writing {name}: {e}"))?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(content)
            .map_err(|e| format!("writing {name}: {e}"))?;
        let status = child.wait().map_err(|e| format!("writing {name}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("writing {name} failed"))
    }

    fn start(
        settings: &[(&str, &str)],
        files: &[(&str, &[u8])],
        owned: bool,
    ) -> Result<Cluster, String> {
        let root = is_root();
        // Owned by the cluster's user (mode 0700), as initdb wants.
        let mut mktemp = Cluster::as_owner(root, "mktemp");
        mktemp.args(["-d", "-t", "portcullis-pg.XXXXXX"]);
        let dir = PathBuf::from(Cluster::run(mktemp, "mktemp")?);
        let mut cluster = Cluster {
            port: 0,
            bindir: bindir(),
            root,
            dir,
            options: String::new(),
            owned,
        };
        let mut initdb = Cluster::as_owner(root, &cluster.program("initdb"));
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(cluster.data());
        Cluster::run(initdb, "initdb")?;
        for (name, content) in files {
            cluster.write_file(name, content)?;
        }
        // A free port: taken from the kernel, released, then given to
        // the server (another process could take it in between: retried).
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("finding a free port: {e}"))?
                .port();
            cluster.options = format!("-p {} -k {}", cluster.port, cluster.dir.display());
            for (name, value) in BASE_SETTINGS.iter().chain(settings) {
                cluster.options.push_str(&format!(" -c {name}={value}"));
            }
            match cluster.start_again() {
                Ok(()) => {
                    cluster.reaper()?;
                    return Ok(cluster);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts the server (again, after [`Cluster::stop`]) on its port.
    pub fn start_again(&self) -> Result<(), String> {
        let mut start = Cluster::as_owner(self.root, &self.program("pg_ctl"));
        start
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(&self.options)
            .arg("start");
        Cluster::run(start, "pg_ctl start").map(|_| ())
    }

    /// Stops the server at once (connections are cut, as when the
    /// database's machine goes away).
    pub fn stop(&self) {
        let mut stop = Cluster::as_owner(self.root, &self.program("pg_ctl"));
        stop.args(["-w", "-D"])
            .arg(self.data())
            .args(["-m", "immediate", "stop"]);
        if let Err(e) = Cluster::run(stop, "pg_ctl stop") {
            panic!("{e}");
        }
    }

    /// Stops the cluster and removes its directory once this process has
    /// ended (a test process runs no destructor for the shared one, and
    /// none at all when it is killed).
    fn reaper(&self) -> Result<(), String> {
        let owner = if self.root {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {owner}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.program("pg_ctl"),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|_| ())
            .map_err(|e| format!("starting the cluster's reaper: {e}"))
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` in the cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new, empty database and answers its name.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs `sql` in database `db` with psql (as the superuser); its
    /// output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut psql = Command::new(self.program("psql"));
        psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql]);
        Cluster::run(psql, "psql").unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.owned {
            let mut stop = Cluster::as_owner(self.root, &self.program("pg_ctl"));
            stop.args(["-D"])
                .arg(self.data())
                .args(["-m", "immediate", "stop"]);
            let _ = Cluster::run(stop, "pg_ctl stop");
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A CA named `ca_name` and a certificate it signed for `localhost` (DNS
/// name only): the CA's PEM, the server's certificate and key (for
/// [`Cluster::start_own`] with `ssl=on`: `server.crt`, `server.key`).
fn tls_material(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// The PostgreSQL backend, each fresh store in a new database of the
/// test cluster.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct PgHarness {
    url: Option<String>,
}

/// Enough connections for the suite's racers (8) to run at once.
#[cfg(test)]
const POOL_SIZE: usize = 10;

#[cfg(test)]
impl crate::store::conformance::Harness for PgHarness {
    fn fresh(&mut self) -> crate::store::Store {
        let cluster = Cluster::get();
        let url = cluster.url(&cluster.create_database());
        let store = super::PgStore::connect(&url, POOL_SIZE, None).expect("connect");
        self.url = Some(url);
        crate::store::Store::with_backend(std::sync::Arc::new(store))
    }

    fn reopen(&mut self, store: crate::store::Store) -> crate::store::Store {
        drop(store);
        let url = self.url.as_ref().expect("a fresh store first");
        crate::store::Store::with_backend(std::sync::Arc::new(
            super::PgStore::connect(url, POOL_SIZE, None).expect("reconnect"),
        ))
    }
}

/// The PostgreSQL backend as an instance serves it: the read model
/// over the database layer ([`super::PgInstance`]).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct PgInstanceHarness {
    url: Option<String>,
}

#[cfg(test)]
fn instance(url: &str) -> crate::store::Store {
    let db = super::PgStore::connect(url, POOL_SIZE, None).expect("connect");
    crate::store::Store::with_backend(std::sync::Arc::new(
        super::PgInstance::start(db).expect("read model"),
    ))
}

#[cfg(test)]
impl crate::store::conformance::Harness for PgInstanceHarness {
    fn fresh(&mut self) -> crate::store::Store {
        let cluster = Cluster::get();
        let url = cluster.url(&cluster.create_database());
        let store = instance(&url);
        self.url = Some(url);
        store
    }

    fn reopen(&mut self, store: crate::store::Store) -> crate::store::Store {
        drop(store);
        instance(self.url.as_ref().expect("a fresh store first"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::PgStore;
    use super::*;
    use crate::store::conformance::Harness;

    #[test]
    fn migrations_run_once_even_when_instances_start_together() {
        let cluster = Cluster::get();
        let url = cluster.url(&cluster.create_database());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || PgStore::connect(&url, 1, None).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("connect and migrate");
        }
        let store = PgStore::connect(&url, 1, None).expect("connect");
        let versions: Vec<i32> = store
            .read(async |c| {
                Ok(c.query(
                    "SELECT version FROM portcullis_schema ORDER BY version",
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect())
            })
            .expect("versions");
        assert_eq!(versions, vec![1, 2, 3, 4]);
    }

    #[test]
    fn reads_work_from_an_async_task_too() {
        let mut h = PgHarness::default();
        let store = h.fresh();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let n = rt.block_on(async move { store.user_count() });
        assert_eq!(n.expect("count"), 0);
    }
}
