//! A blocking four-letter-word client (like ZooKeeper's `FourLetterWordMain`), for `status` and
//! for `start` to see that the server answers. Every step has a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one connect, write or read may take.
pub(crate) const FOUR_LETTER_STEP_TIMEOUT_MS: u64 = 5_000;
/// Largest reply read, in bytes; `srvr` answers in a few hundred.
const FOUR_LETTER_REPLY_BYTES_MAX: u64 = 1024 * 1024;

/// Sends `word` to `host:port` and returns the whole text reply (the server closes after it).
pub(crate) fn send(host: &str, port: u16, word: &str) -> std::io::Result<String> {
    let timeout = Duration::from_millis(FOUR_LETTER_STEP_TIMEOUT_MS);
    let addresses: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last_error = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return exchange(stream, word, timeout),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

fn exchange(mut stream: TcpStream, word: &str, timeout: Duration) -> std::io::Result<String> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(word.as_bytes())?;
    let mut reply = Vec::new();
    stream
        .take(FOUR_LETTER_REPLY_BYTES_MAX)
        .read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The `Mode: ...` line of a `srvr` reply, as zkServer.sh greps it.
pub(crate) fn mode_line(reply: &str) -> Option<&str> {
    reply
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("Mode:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mode_line() {
        let reply =
            "Zookeeper version: x\nLatency min/avg/max: 0/0/0\nMode: standalone\nNode count: 4\n";
        assert_eq!(mode_line(reply), Some("Mode: standalone"));
        assert_eq!(mode_line("imok"), None);
    }
}
