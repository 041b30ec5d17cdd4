//! `net`: the network seam. How a server reaches its peers on the quorum port, and how
//! clients reach a server: plain TCP ([`TcpTransport`]) in production; [`MemoryNetwork`] runs
//! several servers and their clients in one process on an in-memory network that a test
//! partitions at will (both directions or one), slows down or resets, with no root and no real
//! sockets. TLS, the quorum handshake and the client protocol run on top of either, unchanged.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A connection's byte stream: TCP, an in-memory link, or TLS over either.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}
pub type Stream = Box<dyn Io>;

/// A future a transport returns.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// Dials servers and listens for connections.
pub trait Transport: std::fmt::Debug + Send + Sync + 'static {
    /// Opens a stream to `address` (`host:port`).
    fn dial<'a>(&'a self, address: &'a str) -> Pending<'a, Stream>;
    /// Listens on `address` (this server's quorum port).
    fn listen(&self, address: SocketAddr) -> Pending<'_, Box<dyn Listener>>;
}

/// Accepted connections, with the address each came from.
pub trait Listener: Send {
    fn accept(&mut self) -> Pending<'_, (Stream, SocketAddr)>;
}

/// The operating system's TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl Transport for TcpTransport {
    fn dial<'a>(&'a self, address: &'a str) -> Pending<'a, Stream> {
        Box::pin(async move {
            let stream = TcpStream::connect(address).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Stream)
        })
    }

    fn listen(&self, address: SocketAddr) -> Pending<'_, Box<dyn Listener>> {
        Box::pin(async move {
            let listener = TcpListener::bind(address).await?;
            Ok(Box::new(listener) as Box<dyn Listener>)
        })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> Pending<'_, (Stream, SocketAddr)> {
        Box::pin(async move {
            let (stream, peer) = TcpListener::accept(self).await?;
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream) as Stream, peer))
        })
    }
}

/// Bytes buffered in each direction of an in-memory link.
pub const MEMORY_LINK_BUFFER_BYTES: usize = 256 * 1024;
/// Connections an in-memory listener holds before they are accepted.
const MEMORY_BACKLOG: usize = 128;

/// An in-memory network shared by the servers of one process. Each server is an IP address
/// (its quorum address's host must be an IP literal); a partition between two addresses makes
/// every read and write of their links fail from then on, and new dials between them fail,
/// as a cut cable would after the kernel gave up. Cheap to clone (one shared state).
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetworkState>>,
}

#[derive(Debug, Default)]
struct NetworkState {
    listeners: HashMap<SocketAddr, mpsc::Sender<(DuplexStream, SocketAddr, LinkEnds)>>,
    /// (from, to): what `from` sends does not reach `to`.
    cut: BTreeSet<(IpAddr, IpAddr)>,
    /// (from, to): each write `from` makes to `to` waits this long first.
    slow: HashMap<(IpAddr, IpAddr), Duration>,
    /// The next source port a dial from each address uses.
    next_port: HashMap<IpAddr, u16>,
    /// How many times each address's links were reset: a link made before the last reset of
    /// either of its ends is broken.
    resets: HashMap<IpAddr, u64>,
}

impl NetworkState {
    fn resets_of(&self, ip: IpAddr) -> u64 {
        self.resets.get(&ip).copied().unwrap_or(0)
    }
}

/// The two ends of one link, as the reader of a stream sees them: (here, there), with the
/// resets each had seen when the link was made.
#[derive(Clone, Copy, Debug)]
struct LinkEnds {
    here: IpAddr,
    there: IpAddr,
    here_resets: u64,
    there_resets: u64,
}

impl LinkEnds {
    fn new(state: &NetworkState, here: IpAddr, there: IpAddr) -> LinkEnds {
        LinkEnds {
            here,
            there,
            here_resets: state.resets_of(here),
            there_resets: state.resets_of(there),
        }
    }

    /// The same link seen from its other end.
    fn reversed(self) -> LinkEnds {
        LinkEnds {
            here: self.there,
            there: self.here,
            here_resets: self.there_resets,
            there_resets: self.here_resets,
        }
    }
}

/// Source ports of in-memory dials start here (each address counts up from it).
const MEMORY_FIRST_SOURCE_PORT: u16 = 40_000;

impl MemoryNetwork {
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// The transport of the server at `ip`.
    pub fn transport(&self, ip: IpAddr) -> Arc<dyn Transport> {
        Arc::new(MemoryTransport {
            network: self.clone(),
            ip,
        })
    }

    /// Cuts `a` off from `b` in both directions.
    pub fn partition(&self, a: IpAddr, b: IpAddr) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// What `from` sends stops reaching `to` (the other direction still works).
    pub fn cut_one_way(&self, from: IpAddr, to: IpAddr) {
        self.lock().cut.insert((from, to));
    }

    /// Each write `from` makes to `to` waits `delay` before its bytes go: a slow or congested
    /// link (order within a connection holds, as on TCP; across connections it need not).
    pub fn slow_down(&self, from: IpAddr, to: IpAddr, delay: Duration) {
        self.lock().slow.insert((from, to), delay);
    }

    /// Breaks every link `ip` has now, as a TCP reset would (a NAT or firewall dropping its
    /// connections, a peer's socket buffers lost): each end's next read or write fails; new
    /// dials work at once.
    pub fn reset(&self, ip: IpAddr) {
        *self.lock().resets.entry(ip).or_insert(0) += 1;
    }

    /// Every cut and slow link is healed; links cut before stay broken (their ends see errors
    /// and reconnect).
    pub fn heal(&self) {
        let mut state = self.lock();
        state.cut.clear();
        state.slow.clear();
    }

    fn lock(&self) -> MutexGuard<'_, NetworkState> {
        // The state is a set and two maps, always left whole: a panic elsewhere cannot tear it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What bytes from `ends.here` to `ends.there` meet, in one look: an error if the link
    /// is cut or was reset, else how long each write waits on it (None: not slow).
    fn link(&self, ends: LinkEnds) -> io::Result<Option<Duration>> {
        let state = self.lock();
        if state.resets_of(ends.here) != ends.here_resets
            || state.resets_of(ends.there) != ends.there_resets
        {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        }
        if state.cut.contains(&(ends.here, ends.there)) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "partitioned"));
        }
        Ok(state.slow.get(&(ends.here, ends.there)).copied())
    }
}

/// One server's view of a [`MemoryNetwork`].
#[derive(Debug)]
struct MemoryTransport {
    network: MemoryNetwork,
    ip: IpAddr,
}

impl Transport for MemoryTransport {
    fn dial<'a>(&'a self, address: &'a str) -> Pending<'a, Stream> {
        Box::pin(async move {
            let target: SocketAddr = address.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("in-memory peers are IP:port, not {address}"),
                )
            })?;
            let (sender, source, ends) = {
                let mut state = self.network.lock();
                if state.cut.contains(&(self.ip, target.ip())) {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "partitioned"));
                }
                let sender = state
                    .listeners
                    .get(&target)
                    .cloned()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
                let port = state
                    .next_port
                    .entry(self.ip)
                    .or_insert(MEMORY_FIRST_SOURCE_PORT);
                let source = SocketAddr::new(self.ip, *port);
                *port = port.checked_add(1).unwrap_or(MEMORY_FIRST_SOURCE_PORT);
                let ends = LinkEnds::new(&state, self.ip, target.ip());
                (sender, source, ends)
            };
            let (ours, theirs) = tokio::io::duplex(MEMORY_LINK_BUFFER_BYTES);
            sender
                .send((theirs, source, ends.reversed()))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            let link = Link {
                stream: ours,
                network: self.network.clone(),
                ends,
                delay: None,
            };
            Ok(Box::new(link) as Stream)
        })
    }

    fn listen(&self, address: SocketAddr) -> Pending<'_, Box<dyn Listener>> {
        Box::pin(async move {
            let (sender, incoming) = mpsc::channel(MEMORY_BACKLOG);
            let mut state = self.network.lock();
            if state
                .listeners
                .get(&address)
                .is_some_and(|old| !old.is_closed())
            {
                return Err(io::Error::from(io::ErrorKind::AddrInUse));
            }
            state.listeners.insert(address, sender);
            Ok(Box::new(MemoryListener {
                incoming,
                network: self.network.clone(),
            }) as Box<dyn Listener>)
        })
    }
}

struct MemoryListener {
    incoming: mpsc::Receiver<(DuplexStream, SocketAddr, LinkEnds)>,
    network: MemoryNetwork,
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> Pending<'_, (Stream, SocketAddr)> {
        Box::pin(async move {
            let (stream, source, ends) = self
                .incoming
                .recv()
                .await
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            let link = Link {
                stream,
                network: self.network.clone(),
                ends,
                delay: None,
            };
            Ok((Box::new(link) as Stream, source))
        })
    }
}

/// One end of an in-memory link: its reads fail once the other end is cut off from this one,
/// its writes once this one is cut off from the other; on a slow link a write waits first.
struct Link {
    stream: DuplexStream,
    network: MemoryNetwork,
    ends: LinkEnds,
    /// The wait of the write in progress on a slow link.
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for Link {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(error) = self.network.link(self.ends.reversed()) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let slow = match self.network.link(self.ends) {
            Ok(slow) => slow,
            Err(error) => return Poll::Ready(Err(error)),
        };
        if let (None, Some(delay)) = (&self.delay, slow) {
            self.delay = Some(Box::pin(tokio::time::sleep(delay)));
        }
        if let Some(wait) = self.delay.as_mut() {
            ready!(wait.as_mut().poll(cx));
        }
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if written.is_ready() {
            self.delay = None;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test]
    async fn links_carry_bytes_until_cut_and_dials_follow_the_cuts() {
        let network = MemoryNetwork::new();
        let (a, b) = (network.transport(ip(1)), network.transport(ip(2)));
        let address = SocketAddr::new(ip(2), 2888);
        let mut listener = b.listen(address).await.unwrap();
        assert_eq!(
            b.listen(address).await.err().map(|error| error.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
        let mut dialled = a.dial("127.0.0.2:2888").await.unwrap();
        let (mut accepted, source) = listener.accept().await.unwrap();
        assert_eq!(source.ip(), ip(1));
        dialled.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        // One way: 1 no longer reaches 2, 2 still reaches 1.
        network.cut_one_way(ip(1), ip(2));
        assert!(dialled.write_all(b"lost").await.is_err());
        assert!(accepted.read_exact(&mut got).await.is_err());
        accepted.write_all(b"pong").await.unwrap();
        dialled.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        assert!(a.dial("127.0.0.2:2888").await.is_err());
        network.heal();
        let mut dialled = a.dial("127.0.0.2:2888").await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        // A slow link delays each write, and keeps its bytes.
        network.slow_down(ip(1), ip(2), Duration::from_millis(30));
        let started = tokio::time::Instant::now();
        dialled.write_all(b"slow").await.unwrap();
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"slow");
        assert!(started.elapsed() >= Duration::from_millis(30));
        network.heal();
        // A reset breaks the links of that moment, both ways; a new dial works at once.
        network.reset(ip(2));
        assert!(dialled.write_all(b"gone").await.is_err());
        assert!(accepted.write_all(b"gone").await.is_err());
        let mut dialled = a.dial("127.0.0.2:2888").await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        dialled.write_all(b"anew").await.unwrap();
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"anew");
        assert_eq!(
            a.dial("127.0.0.3:2888")
                .await
                .err()
                .map(|error| error.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
    }
}
