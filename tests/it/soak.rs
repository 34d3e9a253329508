//! Soak test (ignored by default; run with `benches/soak.sh`): holds
//! SOAK_CONNECTIONS (2,000) connections open and runs binds and searches
//! on all of them for SOAK_SECS (30) seconds, then reports the error count
//! (must be zero) and the server's peak RSS (VmHWM).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use ldap3_proto::proto::{LdapFilter, LdapMsg, LdapOp, LdapResultCode};
use ldap3_proto::LdapCodec;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::harness::{user_dn, Server, BASE, FAST_HASH_ENV};
use crate::raw;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn request(
    framed: &mut Framed<TcpStream, LdapCodec>,
    msg: LdapMsg,
) -> Result<(usize, LdapResultCode), String> {
    let id = msg.msgid;
    framed.send(msg).await.map_err(|e| e.to_string())?;
    let mut entries = 0;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), framed.next())
            .await
            .map_err(|_| "timeout".to_string())?
            .ok_or("closed")?
            .map_err(|e| e.to_string())?;
        if m.msgid != id {
            return Err(format!("unexpected message {m:?}"));
        }
        match m.op {
            LdapOp::SearchResultEntry(_) => entries += 1,
            LdapOp::SearchResultDone(r) => return Ok((entries, r.code)),
            LdapOp::BindResponse(r) => return Ok((0, r.res.code)),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
}

#[test]
#[ignore = "soak test: run with benches/soak.sh"]
fn soak() {
    let conns = env_number("SOAK_CONNECTIONS", 2000) as usize;
    let secs = env_number("SOAK_SECS", 30);
    let users = 200usize;
    let max = (conns + 100).to_string();
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_LDAP_MAX_CONNECTIONS", &max));
    // Every client may bind at the same moment: let them all queue (the
    // default of 256 answers the excess busy (51), by design).
    env.push(("PORTCULLIS_LDAP_MAX_QUEUED_BINDS", &max));
    let s = Server::start_seeded(&env, |data| {
        let store = portcullis::store::Store::open(data).expect("store");
        let hasher =
            portcullis::auth::password::Hasher::new(&portcullis::auth::password::HashConfig {
                argon2_memory_kib: 1024,
                argon2_iterations: 1,
                argon2_parallelism: 1,
                hash_workers: 0,
            })
            .expect("hasher");
        let phc = hasher.hash_blocking("soak-pw").expect("hash");
        let readers = store.create_group("ldap-search", None).expect("group");
        for i in 0..users {
            let u = store
                .create_user(portcullis::store::NewUser {
                    username: format!("soak{i}"),
                    ..Default::default()
                })
                .expect("user");
            store.set_password_hash(u.id, &phc).expect("hash");
            store
                .add_member(readers.id, portcullis::store::Member::User(u.id))
                .expect("member");
        }
        store.flush().expect("flush");
    });
    let pid = s.pid();
    let addr = s.addr.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let errors = Arc::new(AtomicU64::new(0));
    let (binds, searches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    rt.block_on(async {
        // Open and bind every connection first: all are held at once.
        let mut framed = Vec::with_capacity(conns);
        for i in 0..conns {
            let stream = TcpStream::connect(&addr).await.expect("connect");
            let mut f = Framed::new(stream, LdapCodec::default());
            let dn = user_dn(&format!("soak{}", i % users));
            match request(&mut f, raw::bind(1, &dn, "soak-pw")).await {
                Ok((_, LdapResultCode::Success)) => {}
                other => {
                    eprintln!("initial bind {i}: {other:?}");
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            framed.push(f);
        }
        let held = Instant::now();
        println!(
            "soak: {conns} connections open and bound in {:?}",
            held - started
        );
        let deadline = held + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for (i, mut f) in framed.into_iter().enumerate() {
            let (errors, binds, searches) = (errors.clone(), binds.clone(), searches.clone());
            tasks.push(tokio::spawn(async move {
                let mut id = 2;
                while Instant::now() < deadline {
                    let user = format!("soak{}", (i * 7 + id as usize) % users);
                    let filter = LdapFilter::Equality("uid".into(), user.clone());
                    match request(&mut f, raw::search(id, BASE, filter)).await {
                        Ok((1, LdapResultCode::Success)) => {
                            searches.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!("search on {i}: {other:?}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    id += 1;
                    if id % 4 == 0 {
                        match request(&mut f, raw::bind(id, &user_dn(&user), "soak-pw")).await {
                            Ok((_, LdapResultCode::Success)) => {
                                binds.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                eprintln!("bind on {i}: {other:?}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        id += 1;
                    }
                    // A client that thinks between requests.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                f
            }));
        }
        let mut still_open = Vec::new();
        for t in tasks {
            if let Ok(f) = t.await {
                still_open.push(f);
            }
        }
        assert_eq!(still_open.len(), conns);
    });
    let hwm = vm_hwm_kib(pid);
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "soak: {conns} connections, {secs} s: {} binds, {} searches, {errors} errors, server peak RSS (VmHWM) {} MiB ({hwm} KiB)",
        binds.load(Ordering::Relaxed) + conns as u64,
        searches.load(Ordering::Relaxed),
        hwm / 1024,
    );
    assert_eq!(errors, 0);
}
