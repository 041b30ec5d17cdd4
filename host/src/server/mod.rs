//! `server`: listeners, connections, dispatch, 4lw.
//!
//! TEMPORARY STAND-IN written on the `config` branch so `zkw server start|stop|status` can be
//! tested end to end. It only binds the client port and answers the four-letter words `srvr`
//! (with `Mode: standalone`) and `ruok`. The lead's real server replaces this whole file on
//! merge; only the signature of [`serve`] is the contract.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `config` until `shutdown` completes. (TEMPORARY stand-in, see the module doc.)
pub async fn serve(
    config: crate::config::Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ip = config
        .client_port_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let listener = TcpListener::bind(SocketAddr::new(ip, config.client_port)).await?;
    tracing::info!(address = %listener.local_addr()?, "listening (temporary stand-in server)");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                tokio::spawn(answer(stream));
            }
        }
    }
}

async fn answer(mut stream: TcpStream) {
    let mut word = [0_u8; 4];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut word),
    );
    if !matches!(read.await, Ok(Ok(_))) {
        return;
    }
    let reply = match &word {
        b"srvr" => format!(
            "Zookeeper version: zkw {}\nLatency min/avg/max: 0/0/0\nReceived: 0\nSent: 0\n\
             Connections: 1\nOutstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 1\n",
            crate::cli::VERSION
        ),
        b"ruok" => "imok".to_owned(),
        _ => return,
    };
    let _ = stream.write_all(reply.as_bytes()).await;
}
