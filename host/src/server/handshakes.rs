//! Bounds on the TLS handshakes in progress on the secure client port, before `maxClientCnxns`
//! applies (a connection is admitted once its handshake is done): without them a client could
//! open any number of sockets and leave each handshake half done until its timeout
//! (`ssl.handshakeDetectionTimeoutMillis`). ZooKeeper's Netty factory counts a connection
//! against `maxClientCnxns` from accept, its handshake included.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::counted_address;

/// TLS handshakes in progress on one server.
pub const TLS_HANDSHAKES_MAX: u32 = 512;
/// TLS handshakes in progress from one client address (an IPv6 client by its /64).
pub const TLS_HANDSHAKES_PER_ADDRESS_MAX: u32 = 16;

/// Handshakes in progress: in all and per counted address.
#[derive(Debug, Default)]
pub struct Handshakes {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_address: HashMap<IpAddr, u32>,
    /// True from a refusal until a handshake is let in again: a flood is logged once.
    refusing: bool,
}

/// A handshake let in; it stops counting when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    handshakes: Arc<Handshakes>,
    address: IpAddr,
}

/// Why a handshake was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeRefusal {
    #[error("{TLS_HANDSHAKES_MAX} TLS handshakes in progress on this server")]
    Server,
    #[error("{TLS_HANDSHAKES_PER_ADDRESS_MAX} TLS handshakes in progress from this address")]
    Address,
}

impl Handshakes {
    /// Lets a handshake from `ip` in, or says why not; `first` in the refusal is true for the
    /// first refusal since one was let in (the one to log).
    pub fn begin(self: &Arc<Self>, ip: IpAddr) -> Result<HandshakeSlot, (HandshakeRefusal, bool)> {
        let address = counted_address(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let from_address = counts.per_address.get(&address).copied().unwrap_or(0);
        let refusal = if counts.total >= TLS_HANDSHAKES_MAX {
            Some(HandshakeRefusal::Server)
        } else if from_address >= TLS_HANDSHAKES_PER_ADDRESS_MAX {
            Some(HandshakeRefusal::Address)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let first = !std::mem::replace(&mut counts.refusing, true);
            return Err((refusal, first));
        }
        counts.refusing = false;
        counts.total += 1;
        *counts.per_address.entry(address).or_insert(0) += 1;
        Ok(HandshakeSlot {
            handshakes: Arc::clone(self),
            address,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut counts = self
            .handshakes
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_handshake_and_slots_come_back() {
        let handshakes = Arc::new(Handshakes::default());
        let attacker: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let mut held: Vec<HandshakeSlot> = (0..TLS_HANDSHAKES_PER_ADDRESS_MAX)
            .map(|_| handshakes.begin(attacker).unwrap())
            .collect();
        assert_eq!(
            handshakes.begin(same_64).unwrap_err(),
            (HandshakeRefusal::Address, true)
        );
        assert_eq!(
            handshakes.begin(attacker).unwrap_err(),
            (HandshakeRefusal::Address, false)
        );
        let good: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(handshakes.begin(good).is_ok());
        held.pop();
        assert!(handshakes.begin(attacker).is_ok());
    }

    #[test]
    fn the_server_bound_holds_across_addresses() {
        let handshakes = Arc::new(Handshakes::default());
        let held: Vec<HandshakeSlot> = (0..TLS_HANDSHAKES_MAX)
            .map(|n| {
                let ip = IpAddr::from([10, 0, (n / 256) as u8, (n % 256) as u8]);
                handshakes.begin(ip).unwrap()
            })
            .collect();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            handshakes.begin(other).unwrap_err().0,
            HandshakeRefusal::Server
        );
        drop(held);
        assert!(handshakes.begin(other).is_ok());
    }
}
