//! The HTTP ports' listener: at most [`HTTP_CONNECTIONS_MAX`] connections at once (one over is
//! accepted and closed at once) and each closed once idle, as Jetty's connector does with
//! ZooKeeper's `admin.idleTimeout`. Without them a client could hold sockets open for ever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Open connections one HTTP port keeps; the next is closed as soon as it is accepted.
/// ZooKeeper's Jetty has no connection limit (its thread pool bounds the requests it serves at
/// once, not the idle sockets it holds).
pub const HTTP_CONNECTIONS_MAX: usize = 64;

/// Accepts connections within [`HTTP_CONNECTIONS_MAX`], each idle-limited.
pub struct LimitedListener {
    listener: TcpListener,
    what: &'static str,
    slots: Arc<Semaphore>,
    idle: Duration,
    /// True from the first refused connection until one is admitted again: the refusals of a
    /// flood are logged once.
    refusing: bool,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, what: &'static str, idle_ms: u64) -> Self {
        Self {
            listener,
            what,
            slots: Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX)),
            idle: Duration::from_millis(idle_ms),
            refusing: false,
        }
    }
}

impl Listener for LimitedListener {
    type Io = IdleStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (IdleStream, SocketAddr) {
        loop {
            let (stream, peer) = Listener::accept(&mut self.listener).await;
            if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
                self.refusing = false;
                return (IdleStream::new(stream, peer, self.idle, slot), peer);
            }
            if !self.refusing {
                tracing::warn!(
                    %peer,
                    max = HTTP_CONNECTIONS_MAX,
                    "{}: too many connections; closing new ones until one ends",
                    self.what
                );
                self.refusing = true;
            }
            drop(stream);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The address of an HTTP caller (handlers read it as `ConnectInfo<Peer>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, LimitedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A connection that fails (and so is closed) after `idle` without a byte read or written.
pub struct IdleStream {
    stream: TcpStream,
    peer: SocketAddr,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl IdleStream {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        idle: Duration,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            stream,
            peer,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _slot: slot,
        }
    }

    fn progressed(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// The I/O step is pending: an error once the connection has been idle too long.
    fn poll_idle<T>(&mut self, context: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.deadline.as_mut().poll(context).is_pending() {
            return Poll::Pending;
        }
        let idle_ms = self.idle.as_millis();
        tracing::info!(peer = %self.peer, idle_ms, "HTTP connection idle; closing it");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("idle for {idle_ms} ms"),
        )))
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(context, buffer) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context),
        }
    }
}

impl AsyncWrite for IdleStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write(context, bytes) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn over_the_limit_connections_close_and_idle_ones_end() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut limited = LimitedListener::new(listener, "test port", 200);
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..HTTP_CONNECTIONS_MAX {
                held.push(Listener::accept(&mut limited).await.0);
            }
            // One over the limit: accept() closes it and keeps waiting.
            let _ = tokio::time::timeout(Duration::from_secs(2), limited.accept()).await;
            let mut first = held.swap_remove(0);
            let mut byte = [0u8; 1];
            first.read(&mut byte).await
        });
        let mut clients = Vec::new();
        for _ in 0..HTTP_CONNECTIONS_MAX {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        let mut extra = TcpStream::connect(address).await.unwrap();
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        let read = server.await.unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let _ = clients[0].write_all(b"late").await;
    }
}
