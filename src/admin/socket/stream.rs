//! The streaming half of the admin socket: an import's file read after
//! its request line, and an export's bytes and an import's progress sent
//! back before the answer (see the protocol in `super`).

use std::io::{self, Write};
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{FramedRead, LinesCodec};

use super::{
    answer_response, error_response, write_line, TransferHandler, BODY_TIMEOUT, MAX_CHUNK,
    WRITE_TIMEOUT,
};
use crate::admin::transfer::{TransferRequest, MAX_IMPORT_BYTES};
use crate::admin::AdminError;
use crate::migrate::import::Progress;

/// Imports and exports that run at once (per process); more wait.
const MAX_TRANSFERS: usize = 2;
static TRANSFERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_TRANSFERS);

/// What a transfer sends before its answer.
pub(super) enum InterimMessage {
    Data(Vec<u8>),
    Progress(Progress),
}

/// The way from a transfer running on the blocking pool to its
/// connection: bounded, so a slow reader slows the export down rather than
/// filling memory, and closed when the reader is gone, which stops it.
pub struct Interim {
    pub(super) tx: tokio::sync::mpsc::Sender<InterimMessage>,
}

impl Interim {
    /// Bytes of the export, sent in frames of at most [`MAX_CHUNK`].
    pub fn writer(&self) -> InterimWriter<'_> {
        InterimWriter { interim: self }
    }

    /// Progress of a long import. Blocking while the connection is busy.
    pub fn progress(&self, p: Progress) {
        let _ = self.tx.blocking_send(InterimMessage::Progress(p));
    }
}

/// [`Interim::writer`].
pub struct InterimWriter<'a> {
    interim: &'a Interim,
}

impl Write for InterimWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_CHUNK);
        self.interim
            .tx
            .blocking_send(InterimMessage::Data(buf[..n].to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the admin client is gone"))?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads an import's file, runs the transfer on the blocking pool while
/// streaming what it sends, then answers. False when the connection
/// cannot go on (the client left, or its file was refused unread).
pub(super) async fn serve_transfer<R, W>(
    handler: &Arc<TransferHandler>,
    req: TransferRequest,
    lines: &mut FramedRead<R, LinesCodec>,
    write: &mut W,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let op = req.op();
    let length = match &req {
        TransferRequest::Import(i) => i.length,
        TransferRequest::Export(_) => 0,
    };
    if length > MAX_IMPORT_BYTES {
        let e = AdminError::Invalid(format!(
            "the import is {length} bytes; the admin socket takes at most {MAX_IMPORT_BYTES} \
             bytes ({} MiB): split the file, or import it with the server stopped",
            MAX_IMPORT_BYTES >> 20
        ));
        tracing::info!(op, error = %e, "admin request refused");
        let _ = write_line(write, &error_response(&e)).await;
        return false;
    }
    // Each transfer holds a directory's worth of memory (a snapshot, an
    // import's plan): a few at a time, the others wait their turn.
    let Ok(_turn) = TRANSFERS.acquire().await else {
        return false;
    };
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(lines, length as usize)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) | Err(_) => return false,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let handler = handler.clone();
    let job = tokio::task::spawn_blocking(move || handler(req, body, &Interim { tx }));
    let mut client_left = false;
    while let Some(message) = rx.recv().await {
        let sent = match message {
            InterimMessage::Data(bytes) => write_data(write, &bytes).await,
            InterimMessage::Progress(p) => {
                write_line(
                    write,
                    &json!({"progress": {"stage": p.stage, "done": p.done, "total": p.total}}),
                )
                .await
            }
        };
        if sent.is_err() {
            client_left = true;
            break;
        }
    }
    // Closing the channel stops an export whose reader left.
    drop(rx);
    let result = match job.await {
        Ok(result) => result,
        Err(e) => Err(AdminError::Internal(format!("the request panicked: {e}"))),
    };
    let response = answer_response(op, result);
    !client_left && write_line(write, &response).await.is_ok()
}

/// Exactly `length` bytes after the request line: first what the line
/// reader holds already, then from the stream.
async fn read_body<R: AsyncRead + Unpin>(
    lines: &mut FramedRead<R, LinesCodec>,
    length: usize,
) -> io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut body = Vec::with_capacity(length);
    let buffered = lines.read_buffer_mut();
    let take = buffered.len().min(length);
    body.extend_from_slice(&buffered.split_to(take));
    if body.len() < length {
        let rest = (length - body.len()) as u64;
        (&mut *lines.get_mut())
            .take(rest)
            .read_to_end(&mut body)
            .await?;
    }
    if body.len() != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the import ended early",
        ));
    }
    Ok(body)
}

async fn write_data<W: AsyncWrite + Unpin>(write: &mut W, bytes: &[u8]) -> io::Result<()> {
    let mut frame = serde_json::to_vec(&json!({ "data": bytes.len() }))?;
    frame.push(b'\n');
    frame.extend_from_slice(bytes);
    tokio::time::timeout(WRITE_TIMEOUT, async {
        write.write_all(&frame).await?;
        write.flush().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "admin client did not read"))?
}
