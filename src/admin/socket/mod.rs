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
//!
//! `import` and `export` ([`TransferRequest`]) carry files, so their lines
//! frame raw bytes:
//! - an `import` line says `"length": N` and is followed by exactly N
//!   bytes, the file (at most [`transfer::MAX_IMPORT_BYTES`]; a longer one is
//!   refused, with the limit in the message, and the connection closed);
//! - before its final `ok` or `error` line the server may send
//!   `{"data": N}` lines, each followed by N raw bytes of the export (at
//!   most [`MAX_CHUNK`]), and `{"progress": {"stage": …, "done": …,
//!   "total": …}}` lines for a long import. An export is streamed as it is
//!   written, so no limit bounds the size of the directory; so is the
//!   listing of an import's dry run that asks for one (`"listing": "text"`
//!   or `"json"`).

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

mod stream;

pub use stream::{Interim, InterimWriter};

use super::transfer::{self, DataFormat, ImportRequest, Mode, TransferContext, TransferRequest};
use super::{execute, AdminAnswer, AdminContext, AdminError, AdminRequest};
use crate::migrate::import::ImportOptions;

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
/// How long the client waits for the next line of an import or export
/// (hashing a large import's passwords, or writing it, takes a while).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long the server waits for an import's file to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Largest piece of an export in one `data` frame.
pub const MAX_CHUNK: usize = 256 * 1024;
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

/// What `import` and `export` need from the server's settings.
#[derive(Clone, Debug, Default)]
pub struct TransferSettings {
    pub data_dir: PathBuf,
    /// `import.keep_attributes`.
    pub import: ImportOptions,
}

impl TransferSettings {
    pub fn of(config: &crate::config::Config) -> TransferSettings {
        TransferSettings {
            data_dir: config.data_dir.clone(),
            import: ImportOptions {
                keep_attributes: config.import.keep_attributes.clone(),
            },
        }
    }
}

/// Serves admin requests on `listener` until `shutdown` is cancelled, then
/// waits for requests in progress to be answered. Each request runs
/// [`execute`] (or, for `import` and `export`, `transfer`) on the blocking
/// pool.
pub async fn serve_admin(
    listener: UnixListener,
    ctx: Arc<AdminContext>,
    settings: TransferSettings,
    shutdown: CancellationToken,
) {
    // Every answered change is on disk (the store's writes are durable
    // when they return): a crash after the CLI reports success never
    // loses it.
    let admin_ctx = ctx.clone();
    let handler = move |req| execute(&admin_ctx, req);
    let transfers = move |req: TransferRequest, body: Vec<u8>, interim: &Interim| {
        let cx = TransferContext {
            admin: &ctx,
            mode: Mode::Serving,
            data_dir: &settings.data_dir,
            import: settings.import.clone(),
        };
        run_transfer(&cx, req, &body, interim)
    };
    let handlers = Handlers {
        admin: Arc::new(handler),
        transfer: Arc::new(transfers),
    };
    serve_with(listener, handlers, shutdown).await
}

/// Runs one transfer with its file (`body`), streaming through `interim`.
pub fn run_transfer(
    cx: &TransferContext<'_>,
    req: TransferRequest,
    body: &[u8],
    interim: &Interim,
) -> Result<Value, AdminError> {
    let answer = match req {
        TransferRequest::Export(r) => {
            let mut out = interim.writer();
            let done = transfer::export(cx, &r, &mut out)?;
            serde_json::to_value(done)
        }
        TransferRequest::Import(ImportRequest {
            format: DataFormat::Ldif,
            dry_run: true,
            listing: Some(listing),
            ..
        }) => {
            let mut input = body;
            let mut out = interim.writer();
            let done = transfer::dry_run(cx, &mut input, listing, &mut out, &mut |p| {
                interim.progress(p)
            })?;
            serde_json::to_value(done)
        }
        TransferRequest::Import(r) => {
            let mut input = body;
            let done = transfer::import(cx, &r, &mut input, &mut |p| interim.progress(p))?;
            serde_json::to_value(done)
        }
    };
    answer.map_err(|e| AdminError::Internal(format!("cannot write the answer as JSON: {e}")))
}

type Handler = dyn Fn(AdminRequest) -> Result<AdminAnswer, AdminError> + Send + Sync;
/// Runs an import or export: the request, the import's file, and where
/// the export's bytes and the progress go.
type TransferHandler =
    dyn Fn(TransferRequest, Vec<u8>, &Interim) -> Result<Value, AdminError> + Send + Sync;

#[derive(Clone)]
struct Handlers {
    admin: Arc<Handler>,
    transfer: Arc<TransferHandler>,
}

/// [`serve_admin`] with the request handlers as a parameter, so the
/// protocol is tested without a store.
async fn serve_with(listener: UnixListener, handler: Handlers, shutdown: CancellationToken) {
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

async fn serve_connection<S>(stream: S, handler: Handlers, shutdown: CancellationToken)
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
        if let Some(req) = transfer_request(&line) {
            let keep_going = match req {
                Ok(req) => {
                    stream::serve_transfer(&handler.transfer, req, &mut lines, &mut write).await
                }
                Err(e) => write_line(&mut write, &error_response(&e)).await.is_ok(),
            };
            if !keep_going {
                return;
            }
            continue;
        }
        let response = handle_line(&handler.admin, &line).await;
        if write_line(&mut write, &response).await.is_err() {
            return;
        }
    }
}

/// `Some` when the line asks for an import or an export.
fn transfer_request(line: &str) -> Option<Result<TransferRequest, AdminError>> {
    let value: Value = serde_json::from_str(line).ok()?;
    let op = value.get("op")?.as_str()?;
    if !TransferRequest::is_transfer_op(op) {
        return None;
    }
    Some(
        serde_json::from_value(value)
            .map_err(|e| AdminError::Invalid(format!("malformed request: {e}"))),
    )
}

fn answer_response(op: &'static str, result: Result<Value, AdminError>) -> Value {
    match result {
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
    answer_response(op, document)
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

    /// Sends an import or export (with the import's file) and waits for
    /// its answer, writing the export's bytes to `sink` and passing
    /// progress (stage, done, total) to `progress` as they come.
    pub fn transfer(
        &mut self,
        req: &TransferRequest,
        body: &[u8],
        sink: &mut dyn Write,
        progress: &mut dyn FnMut(&str, usize, Option<usize>),
    ) -> io::Result<Result<Value, AdminError>> {
        self.stream.set_read_timeout(Some(TRANSFER_TIMEOUT))?;
        self.stream.set_write_timeout(Some(TRANSFER_TIMEOUT))?;
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.stream.write_all(&line)?;
        // The server may refuse the file before it has read all of it;
        // its answer says why.
        match self.stream.write_all(body) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) => {}
            other => other?,
        }
        self.stream.flush()?;
        loop {
            let line = self.read_line()?;
            let value: Value = serde_json::from_slice(&line).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "the admin response is not JSON")
            })?;
            if let Some(n) = value.get("data") {
                let n = n
                    .as_u64()
                    .filter(|n| *n as usize <= MAX_CHUNK)
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad data frame from the server")
                    })?;
                let mut chunk = vec![0; n as usize];
                self.reader.read_exact(&mut chunk)?;
                sink.write_all(&chunk)?;
            } else if let Some(p) = value.get("progress") {
                let stage = p.get("stage").and_then(Value::as_str).unwrap_or("working");
                let count = |k: &str| p.get(k).and_then(Value::as_u64).map(|n| n as usize);
                progress(stage, count("done").unwrap_or(0), count("total"));
            } else {
                return parse_response(&line);
            }
        }
    }

    /// One response line, with its newline.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
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
        Ok(buf)
    }

    /// Sends one request and waits for its answer, the JSON document as it
    /// came. The outer error is the transport's; the inner one is the
    /// server's answer.
    pub fn call(&mut self, req: &AdminRequest) -> io::Result<Result<Value, AdminError>> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.stream.write_all(&line)?;
        self.stream.flush()?;
        let buf = self.read_line()?;
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
mod tests;
