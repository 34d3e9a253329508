//! Accepting on the threads that serve the connections.
//!
//! tokio's `TcpListener::accept` registers every socket it accepts with the
//! accepting runtime's I/O driver. When the main runtime accepted and a
//! reactor thread served (`reactors.rs`), a connection had to leave the
//! first driver (`into_std`) and join the reactor's (`from_std`): three
//! `epoll_ctl` calls where one does, and two threads woken per connection
//! (the acceptor, then the reactor). A pool-less web application opens a
//! connection per request and paid that on every request.
//!
//! Here each runtime that accepts registers its own descriptor of the
//! listening socket (a `dup`) and waits for it to become readable;
//! `accept4` (through mio: non-blocking and close-on-exec in one system
//! call) hands back a socket no driver knows yet, and `TcpStream::from_std`
//! registers it once, on the runtime that serves it. Every accepting
//! runtime is told of a new connection; the first to call `accept4` gets
//! it, the others find nothing (`WouldBlock`) and wait again.

use std::io;
use std::net::SocketAddr;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpListener;
use tokio::runtime::Handle;

/// A bound listening socket, registered with no runtime.
pub struct Listener {
    socket: std::net::TcpListener,
}

impl Listener {
    /// Takes over `listener`, bound by the caller so that a port in use is
    /// reported at start.
    pub fn new(listener: TcpListener) -> io::Result<Listener> {
        // Leaves tokio's driver; the socket stays non-blocking.
        Ok(Listener {
            socket: listener.into_std()?,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A descriptor of the socket registered with the runtime `on` (the
    /// current one when `None`); accept with it on that runtime only.
    pub fn register(&self, on: Option<&Handle>) -> io::Result<Accepting> {
        let socket = mio::net::TcpListener::from_std(self.socket.try_clone()?);
        let _entered = on.map(Handle::enter);
        // `with_interest` is deprecated because an `AsRawFd` type could
        // change its descriptor under the registration; mio's listener owns
        // one descriptor for its whole life, so this use is sound (and the
        // crate forbids the `unsafe` of its replacement).
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(socket, Interest::READABLE)?;
        Ok(Accepting { fd })
    }
}

/// The listening socket as one runtime waits on it.
pub struct Accepting {
    fd: AsyncFd<mio::net::TcpListener>,
}

impl Accepting {
    /// The next connection: a non-blocking socket no runtime knows yet.
    /// Cancel-safe: nothing is accepted across an await.
    pub async fn accept(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        loop {
            let mut ready = self.fd.readable().await?;
            // WouldBlock (another runtime was first) clears the readiness
            // and waits again; any other error (out of descriptors, ...)
            // goes to the caller's backoff.
            if let Ok(accepted) = ready.try_io(|fd| fd.get_ref().accept()) {
                return accepted.map(|(stream, peer)| (stream.into(), peer));
            }
        }
    }
}
