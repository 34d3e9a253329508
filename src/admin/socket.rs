//! The admin socket: how the CLI reaches a running server.
//!
//! sled lets one process own the database, so while `serve` runs, admin
//! commands travel over a Unix socket at `<data_dir>/admin.sock` (mode 0600:
//! only the server's own user, and root, can connect). The protocol is
//! newline-delimited JSON: each request line is an [`AdminRequest`]; each
//! response line is `{"ok": <answer>}` (the [`AdminAnswer`]'s JSON
//! document) or
//! `{"error": {"kind": "not_found" | "already_exists" | "invalid" |
//! "internal", "message": "..."}}`. A connection may carry several
//! requests, answered in order.
//!
//! The detail of an internal error is logged by the server and replaced by a
//! generic message on the socket.

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{execute, AdminAnswer, AdminContext, AdminError, AdminRequest};

/// File name of the socket inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// Longest request line the server reads.
pub const MAX_REQUEST_LINE: usize = 1024 * 1024;
/// Longest response line the client reads (a `user list` of a large
/// directory is big, but not this big).
const MAX_RESPONSE_LINE: u64 = 256 * 1024 * 1024;
/// How long the server waits for the next request on a connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server waits for a client to take its response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the client waits for an answer (hashing may queue behind binds).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Admin connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 16;
/// Shown instead of an internal error's detail.
const INTERNAL_MESSAGE: &str = "see the server log for details";

/// `<data_dir>/admin.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds `<data_dir>/admin.sock` with mode 0600. A socket file left by a
/// server that is gone (connecting to it fails) is removed first; a live one
/// is an error. Must be called within a tokio runtime.
///
/// The socket is bound inside a fresh directory of mode 0700 and renamed
/// into place after its mode is set, so it is never reachable by others,
/// whatever the umask.
pub fn bind_admin_socket(data_dir: &Path) -> anyhow::Result<UnixListener> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("while creating {}", data_dir.display()))?;
    let path = socket_path(data_dir);
    if std::fs::symlink_metadata(&path).is_ok() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            bail!("another server is already listening on {}", path.display());
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("while removing the stale socket {}", path.display()))?;
    }

    let private = data_dir.join(format!(".admin-sock.{}", std::process::id()));
    if std::fs::symlink_metadata(&private).is_ok() {
        // Left by an earlier process that had our pid and crashed.
        std::fs::remove_dir_all(&private)
            .with_context(|| format!("while removing {}", private.display()))?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("while creating {}", private.display()))?;
    let bound = (|| -> anyhow::Result<UnixListener> {
        let inner = private.join("s");
        let listener = UnixListener::bind(&inner)
            .with_context(|| format!("while binding the admin socket {}", path.display()))?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
            .context("while setting the admin socket's mode")?;
        std::fs::rename(&inner, &path)
            .with_context(|| format!("while moving the admin socket to {}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Serves admin requests on `listener` until `shutdown` is cancelled, then
/// waits for requests in progress to be answered. Each request runs
/// [`execute`] on the blocking pool.
pub async fn serve_admin(
    listener: UnixListener,
    ctx: Arc<AdminContext>,
    shutdown: CancellationToken,
) {
    // Every answered change is on disk (the store's writes are durable
    // when they return): a crash after the CLI reports success never
    // loses it.
    let handler = move |req| execute(&ctx, req);
    serve_with(listener, Arc::new(handler), shutdown).await
}

type Handler = dyn Fn(AdminRequest) -> Result<AdminAnswer, AdminError> + Send + Sync;

/// [`serve_admin`] with the request handler as a parameter, so the protocol
/// is tested without a store.
async fn serve_with(listener: UnixListener, handler: Arc<Handler>, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            serve_connection(stream, handler, shutdown).await;
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection<S>(stream: S, handler: Arc<Handler>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_REQUEST_LINE));
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = tokio::time::timeout(IDLE_TIMEOUT, lines.next()) => next,
        };
        let line = match next {
            Err(_) | Ok(None) => return,
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(LinesCodecError::MaxLineLengthExceeded))) => {
                let e =
                    AdminError::Invalid(format!("request longer than {MAX_REQUEST_LINE} bytes"));
                let _ = write_line(&mut write, &error_response(&e)).await;
                return;
            }
            Ok(Some(Err(LinesCodecError::Io(e)))) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let e = AdminError::Invalid("request is not UTF-8".into());
                    let _ = write_line(&mut write, &error_response(&e)).await;
                }
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        // Requests in progress are answered even during shutdown.
        let response = handle_line(&handler, &line).await;
        if write_line(&mut write, &response).await.is_err() {
            return;
        }
    }
}

async fn handle_line(handler: &Arc<Handler>, line: &str) -> Value {
    let req: AdminRequest = match serde_json::from_str(line) {
        Ok(req) => req,
        Err(e) => {
            return error_response(&AdminError::Invalid(format!("malformed request: {e}")));
        }
    };
    let op = req.op();
    let handler = handler.clone();
    let result = match tokio::task::spawn_blocking(move || handler(req)).await {
        Ok(result) => result,
        Err(e) => Err(AdminError::Internal(format!("the request panicked: {e}"))),
    };
    let document = result.and_then(|answer| {
        answer
            .to_json()
            .map_err(|e| AdminError::Internal(format!("cannot write the answer as JSON: {e}")))
    });
    match document {
        Ok(document) => {
            tracing::info!(op, "admin request done");
            json!({ "ok": document })
        }
        Err(AdminError::Internal(detail)) => {
            tracing::error!(op, error = %detail, "admin request failed");
            error_response(&AdminError::Internal(INTERNAL_MESSAGE.into()))
        }
        Err(e) => {
            tracing::info!(op, error = %e, "admin request refused");
            error_response(&e)
        }
    }
}

fn error_response(e: &AdminError) -> Value {
    let message = match e {
        AdminError::NotFound(m)
        | AdminError::AlreadyExists(m)
        | AdminError::Invalid(m)
        | AdminError::Internal(m) => m,
    };
    json!({ "error": { "kind": e.kind(), "message": message } })
}

async fn write_line<W: AsyncWrite + Unpin>(write: &mut W, value: &Value) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(value)?;
    bytes.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, async {
        write.write_all(&bytes).await?;
        write.flush().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "admin client did not read"))?
}

/// A blocking connection to a running server's admin socket.
pub struct AdminClient {
    stream: std::os::unix::net::UnixStream,
    reader: BufReader<std::os::unix::net::UnixStream>,
}

impl AdminClient {
    /// Connects; fails with `NotFound` or `ConnectionRefused` when no server
    /// is running.
    pub fn connect(socket: &Path) -> io::Result<AdminClient> {
        let stream = std::os::unix::net::UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(AdminClient { stream, reader })
    }

    /// Sends one request and waits for its answer, read into the typed
    /// answer to that request. The outer error is the transport's (or a
    /// document that does not fit the request); the inner one is the
    /// server's answer.
    pub fn call_typed(
        &mut self,
        req: &AdminRequest,
    ) -> io::Result<Result<AdminAnswer, AdminError>> {
        let document = match self.call(req)? {
            Ok(document) => document,
            Err(e) => return Ok(Err(e)),
        };
        match super::answer_from_json(req, document) {
            Ok(answer) => Ok(Ok(answer)),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the admin response does not fit the request: {e}"),
            )),
        }
    }

    /// Sends one request and waits for its answer, the JSON document as it
    /// came. The outer error is the transport's; the inner one is the
    /// server's answer.
    pub fn call(&mut self, req: &AdminRequest) -> io::Result<Result<Value, AdminError>> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.stream.write_all(&line)?;
        self.stream.flush()?;

        let mut buf = Vec::new();
        self.reader
            .by_ref()
            .take(MAX_RESPONSE_LINE + 1)
            .read_until(b'\n', &mut buf)?;
        if buf.last() != Some(&b'\n') {
            return Err(if buf.len() as u64 > MAX_RESPONSE_LINE {
                io::Error::new(io::ErrorKind::InvalidData, "admin response too long")
            } else {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the admin connection without answering",
                )
            });
        }
        parse_response(&buf)
    }
}

/// Connects to `socket`, sends `req` and returns the server's answer.
pub fn call(socket: &Path, req: &AdminRequest) -> Result<Result<Value, AdminError>, io::Error> {
    AdminClient::connect(socket)?.call(req)
}

fn parse_response(bytes: &[u8]) -> io::Result<Result<Value, AdminError>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|_| invalid("the admin response is not JSON"))?;
    if let Some(ok) = value.get_mut("ok") {
        return Ok(Ok(ok.take()));
    }
    let Some(error) = value.get("error") else {
        return Err(invalid("the admin response has neither ok nor error"));
    };
    let kind = error
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("internal");
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_string();
    Ok(Err(AdminError::from_kind(kind, message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::view::UserView;
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

    struct Running {
        dir: tempfile::TempDir,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start() -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = bind_admin_socket(dir.path()).expect("bind");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_with(listener, Arc::new(fake), shutdown.clone()));
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
        let task = tokio::spawn(serve_with(listener, Arc::new(fake), shutdown.clone()));
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
}
