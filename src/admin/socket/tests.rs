//! The admin socket's protocol, with fake handlers (no store).

use super::*;
use crate::admin::transfer::MAX_IMPORT_BYTES;
use crate::admin::view::UserView;
use crate::migrate::import::Progress;
use std::os::unix::fs::FileTypeExt;

fn alice() -> UserView {
    UserView {
        id: "00000000-0000-0000-0000-000000000001".into(),
        username: "alice".into(),
        dn: "cn=alice,ou=users,dc=example,dc=com".into(),
        full_name: None,
        email: None,
        uid_number: 2001,
        gid_number: 2001,
        disabled: false,
        groups: vec![],
        attrs: Default::default(),
        created: None,
        modified: None,
        pwd_changed: None,
    }
}

fn alice_document() -> Value {
    AdminAnswer::User(alice()).to_json().expect("json")
}

/// Answers `user_show` for "alice" only; `user_list` fails internally;
/// `group_show` gets an answer that does not fit it.
fn fake(req: AdminRequest) -> Result<AdminAnswer, AdminError> {
    match req {
        AdminRequest::UserShow { username } if username == "alice" => {
            Ok(AdminAnswer::User(alice()))
        }
        AdminRequest::GroupShow { .. } => Ok(AdminAnswer::User(alice())),
        AdminRequest::UserShow { username } => {
            Err(AdminError::NotFound(format!("user {username} not found")))
        }
        AdminRequest::UserList => Err(AdminError::Internal("disk on fire".into())),
        _ => Err(AdminError::Invalid("unsupported".into())),
    }
}

/// Export: three frames then a summary; import: echoes the file's
/// length after one progress line; an import of "bad" fails.
fn fake_transfer(
    req: TransferRequest,
    body: Vec<u8>,
    interim: &Interim,
) -> Result<Value, AdminError> {
    match req {
        TransferRequest::Export(_) => {
            let mut w = interim.writer();
            let big = vec![b'x'; MAX_CHUNK + 10];
            w.write_all(b"dn: dc=example,dc=com\n").expect("write");
            w.write_all(&big).expect("write");
            Ok(json!({"entries": 1}))
        }
        TransferRequest::Import(_) if body == b"bad" => {
            Err(AdminError::Invalid("line 1: bad".into()))
        }
        TransferRequest::Import(_) => {
            interim.progress(Progress {
                stage: "hashing",
                done: 1000,
                total: Some(2000),
            });
            Ok(json!({"length": body.len()}))
        }
    }
}

fn fake_handlers() -> Handlers {
    Handlers {
        admin: Arc::new(fake),
        transfer: Arc::new(fake_transfer),
    }
}

#[tokio::test]
async fn transfers_stream_files_both_ways() {
    use crate::admin::transfer::{ExportRequest, ImportRequest};
    let server = start().await;
    let path = socket_path(server.dir.path());
    let (exported, out, imported, progress, bad, after, huge) = blocking(move || {
        let mut client = AdminClient::connect(&path).expect("connect");
        let mut out = Vec::new();
        let exported = client
            .transfer(
                &TransferRequest::Export(ExportRequest::default()),
                b"",
                &mut out,
                &mut |_, _, _| {},
            )
            .expect("io");
        let body = vec![b'y'; 3 * 1024 * 1024];
        let import = |length: usize| {
            TransferRequest::Import(ImportRequest {
                length: length as u64,
                ..ImportRequest::default()
            })
        };
        let mut progress = Vec::new();
        let imported = client
            .transfer(
                &import(body.len()),
                &body,
                &mut io::sink(),
                &mut |s, d, t| progress.push((s.to_string(), d, t)),
            )
            .expect("io");
        let bad = client
            .transfer(&import(3), b"bad", &mut io::sink(), &mut |_, _, _| {})
            .expect("io");
        // The connection goes on after a transfer.
        let after = client
            .call(&AdminRequest::UserShow {
                username: "alice".into(),
            })
            .expect("io");
        let mut client = AdminClient::connect(&path).expect("connect");
        let huge = client
            .transfer(
                &import(MAX_IMPORT_BYTES as usize + 1),
                b"",
                &mut io::sink(),
                &mut |_, _, _| {},
            )
            .expect("io");
        (exported, out, imported, progress, bad, after, huge)
    })
    .await;
    assert_eq!(exported, Ok(json!({"entries": 1})));
    assert_eq!(out.len(), 22 + MAX_CHUNK + 10);
    assert!(out.starts_with(b"dn: dc=example,dc=com\n"));
    assert_eq!(imported, Ok(json!({"length": 3 * 1024 * 1024})));
    assert_eq!(progress, vec![("hashing".to_string(), 1000, Some(2000))]);
    assert_eq!(bad, Err(AdminError::Invalid("line 1: bad".into())));
    assert_eq!(after, Ok(alice_document()));
    let Err(AdminError::Invalid(message)) = huge else {
        panic!("{huge:?}")
    };
    assert!(message.contains(&MAX_IMPORT_BYTES.to_string()), "{message}");
    server.shutdown.cancel();
    server.task.await.expect("serve");
}

struct Running {
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = bind_admin_socket(dir.path()).expect("bind");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_with(listener, fake_handlers(), shutdown.clone()));
    Running {
        dir,
        shutdown,
        task,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

#[tokio::test]
async fn requests_and_answers() {
    let server = start().await;
    let path = socket_path(server.dir.path());
    let answers = blocking(move || {
        let mut client = AdminClient::connect(&path).expect("connect");
        let show = |u: &str| AdminRequest::UserShow { username: u.into() };
        let a = client.call(&show("alice")).expect("io");
        let b = client.call(&show("bob")).expect("io");
        let c = client.call(&AdminRequest::UserList).expect("io");
        let d = call(&path, &show("alice")).expect("io");
        let e = client.call_typed(&show("alice")).expect("io");
        let f = client.call_typed(&show("bob")).expect("io");
        let g = client
            .call_typed(&AdminRequest::GroupShow {
                name: "staff".into(),
            })
            .expect_err("a user is no answer to group show");
        (a, b, c, d, e, f, g)
    })
    .await;
    assert_eq!(answers.0, Ok(alice_document()));
    assert_eq!(
        answers.1,
        Err(AdminError::NotFound("user bob not found".into()))
    );
    // The internal detail stays in the server.
    assert_eq!(
        answers.2,
        Err(AdminError::Internal(INTERNAL_MESSAGE.into()))
    );
    assert_eq!(answers.3, Ok(alice_document()));
    // The typed call reads the document into the answer to the request.
    assert_eq!(answers.4, Ok(AdminAnswer::User(alice())));
    assert_eq!(
        answers.5,
        Err(AdminError::NotFound("user bob not found".into()))
    );
    assert_eq!(answers.6.kind(), io::ErrorKind::InvalidData);
    server.shutdown.cancel();
    server.task.await.expect("serve");
}

#[tokio::test]
async fn socket_is_private() {
    let server = start().await;
    let meta = std::fs::symlink_metadata(socket_path(server.dir.path())).expect("stat");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // No temporary directory is left behind.
    let entries: Vec<_> = std::fs::read_dir(server.dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(SOCKET_NAME)]);
    server.shutdown.cancel();
    server.task.await.expect("serve");
}

#[tokio::test]
async fn malformed_and_oversized_requests() {
    let server = start().await;
    let path = socket_path(server.dir.path());
    let (malformed, oversized) = blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        s.write_all(b"{\"op\":\"nope\"}\n").expect("write");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut first = String::new();
        r.read_line(&mut first).expect("read");

        let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        let big = vec![b'x'; MAX_REQUEST_LINE + 10];
        // The server may close before all of it is written.
        let _ = s.write_all(&big);
        let _ = s.write_all(b"\n");
        let mut r = BufReader::new(s);
        let mut second = String::new();
        r.read_line(&mut second).expect("read");
        (first, second)
    })
    .await;
    let malformed: Value = serde_json::from_str(&malformed).expect("json");
    assert_eq!(malformed["error"]["kind"], "invalid");
    let oversized: Value = serde_json::from_str(&oversized).expect("json");
    assert_eq!(oversized["error"]["kind"], "invalid");
    assert!(oversized["error"]["message"]
        .as_str()
        .expect("message")
        .contains("longer"));
    server.shutdown.cancel();
    server.task.await.expect("serve");
}

#[tokio::test]
async fn stale_socket_is_replaced_live_one_is_not() {
    let server = start().await;
    // A second server on the same data directory is refused.
    let err = bind_admin_socket(server.dir.path()).expect_err("live socket");
    assert!(err.to_string().contains("already listening"), "{err}");
    server.shutdown.cancel();
    server.task.await.expect("serve");

    // The first server's listener is gone; its file is stale now.
    let path = socket_path(server.dir.path());
    assert!(std::fs::symlink_metadata(&path).is_ok());
    let listener = bind_admin_socket(server.dir.path()).expect("rebind over stale socket");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_with(listener, fake_handlers(), shutdown.clone()));
    let answer = blocking(move || {
        call(
            &path,
            &AdminRequest::UserShow {
                username: "alice".into(),
            },
        )
    })
    .await
    .expect("io");
    assert_eq!(answer, Ok(alice_document()));
    shutdown.cancel();
    task.await.expect("serve");
}

#[tokio::test]
async fn no_server_means_connection_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = AdminClient::connect(&socket_path(dir.path()))
        .err()
        .expect("no socket");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn responses_parse() {
    assert_eq!(
        parse_response(b"{\"ok\":[1]}\n").expect("io"),
        Ok(json!([1]))
    );
    assert_eq!(
        parse_response(b"{\"error\":{\"kind\":\"already_exists\",\"message\":\"m\"}}\n")
            .expect("io"),
        Err(AdminError::AlreadyExists("m".into()))
    );
    assert!(parse_response(b"nope\n").is_err());
    assert!(parse_response(b"{}\n").is_err());
}
