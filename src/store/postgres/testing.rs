//! A throw-away PostgreSQL cluster for the tests, and the conformance
//! suite's [`Harness`] over it.
//!
//! The first test that needs it starts one cluster for the whole test
//! process: `initdb` into a new directory under the temporary directory,
//! then `pg_ctl start` on a free loopback port with its Unix socket in
//! that directory, `fsync` off (nothing here must survive a machine
//! crash). PostgreSQL refuses to run as root, so as root both run as the
//! `postgres` user (`runuser -u postgres --`); otherwise as the caller.
//! The test harness runs no destructor for a static, so a small reaper
//! (`sh`) started with the cluster waits for the test process to end,
//! then stops the cluster (`pg_ctl stop -m immediate`) and removes the
//! directory. Each [`Harness::fresh`] creates a new database in it.
//!
//! The binaries come from `PORTCULLIS_PG_BINDIR`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package, which
//! `scripts/test` installs), else `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::PgStore;
use crate::store::conformance::Harness;
use crate::store::Store;

/// A running test cluster.
pub(crate) struct Cluster {
    port: u16,
    bindir: Option<PathBuf>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

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
    /// The cluster of this test process, started on first use.
    pub(crate) fn get() -> &'static Cluster {
        match CLUSTER.get_or_init(Cluster::start) {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start the test PostgreSQL cluster: {e}\n\
                 (install Debian's `postgresql` package, e.g. with scripts/test as root, or set \
                 PORTCULLIS_PG_BINDIR)"
            ),
        }
    }

    fn program(bindir: Option<&Path>, name: &str) -> String {
        match bindir {
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

    fn start() -> Result<Cluster, String> {
        let bindir = bindir();
        let bin = |name: &str| Cluster::program(bindir.as_deref(), name);
        let root = is_root();
        // Owned by the cluster's user (mode 0700), as initdb wants.
        let mut mktemp = Cluster::as_owner(root, "mktemp");
        mktemp.args(["-d", "-t", "portcullis-pg.XXXXXX"]);
        let dir = PathBuf::from(Cluster::run(mktemp, "mktemp")?);
        let data = dir.join("data");
        let mut initdb = Cluster::as_owner(root, &bin("initdb"));
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
            .arg(&data);
        Cluster::run(initdb, "initdb")?;
        let pg_ctl = bin("pg_ctl");
        // A free port: taken from the kernel, released, then given to
        // the server (another process could take it in between: retried).
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("finding a free port: {e}"))?
                .port();
            let mut start = Cluster::as_owner(root, &pg_ctl);
            start
                .args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                     -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                    dir.display()
                ))
                .arg("start");
            match Cluster::run(start, "pg_ctl start") {
                Ok(_) => {
                    Cluster::reaper(root, &pg_ctl, &dir, &data)?;
                    return Ok(Cluster { port, bindir });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Stops the cluster and removes its directory once this process has
    /// ended.
    fn reaper(root: bool, pg_ctl: &str, dir: &Path, data: &Path) -> Result<(), String> {
        let owner = if root { "runuser -u postgres -- " } else { "" };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {owner}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            data = data.display(),
            dir = dir.display(),
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

    /// The URL of database `db` in the cluster.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new, empty database and answers its name.
    pub(crate) fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut psql = Command::new(Cluster::program(self.bindir.as_deref(), "psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url("postgres"))
            .args(["-c", &format!("CREATE DATABASE {name}")]);
        if let Err(e) = Cluster::run(psql, "CREATE DATABASE") {
            panic!("{e}");
        }
        name
    }
}

/// The PostgreSQL backend, each fresh store in a new database of the
/// test cluster.
#[derive(Default)]
pub(crate) struct PgHarness {
    url: Option<String>,
}

/// Enough connections for the suite's racers (8) to run at once.
const POOL_SIZE: usize = 10;

impl Harness for PgHarness {
    fn fresh(&mut self) -> Store {
        let cluster = Cluster::get();
        let url = cluster.url(&cluster.create_database());
        let store = PgStore::connect(&url, POOL_SIZE, None).expect("connect");
        self.url = Some(url);
        Store::with_backend(std::sync::Arc::new(store))
    }

    fn reopen(&mut self, store: Store) -> Store {
        drop(store);
        let url = self.url.as_ref().expect("a fresh store first");
        Store::with_backend(std::sync::Arc::new(
            PgStore::connect(url, POOL_SIZE, None).expect("reconnect"),
        ))
    }
}

/// The PostgreSQL backend as an instance serves it: the read model
/// over the database layer ([`super::PgInstance`]).
#[derive(Default)]
pub(crate) struct PgInstanceHarness {
    url: Option<String>,
}

fn instance(url: &str) -> Store {
    let db = PgStore::connect(url, POOL_SIZE, None).expect("connect");
    Store::with_backend(std::sync::Arc::new(
        super::PgInstance::start(db).expect("read model"),
    ))
}

impl Harness for PgInstanceHarness {
    fn fresh(&mut self) -> Store {
        let cluster = Cluster::get();
        let url = cluster.url(&cluster.create_database());
        let store = instance(&url);
        self.url = Some(url);
        store
    }

    fn reopen(&mut self, store: Store) -> Store {
        drop(store);
        instance(self.url.as_ref().expect("a fresh store first"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(versions, vec![1, 2, 3]);
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
