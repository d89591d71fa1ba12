//! Loopback pod addresses: 127.0.0.N, N from 2 up, lowest free first.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

const FIRST: u8 = 2;
const LAST: u8 = 254;

/// The set of loopback addresses handed out to pods.
#[derive(Debug, Default)]
pub struct IpPool {
    used: BTreeSet<u8>,
}

impl IpPool {
    /// Takes `preferred` if it is a free pod address (a pod keeps its IP across agent
    /// restarts), else the lowest free one.
    pub fn allocate(&mut self, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(n) = preferred.and_then(host_part)
            && self.used.insert(n)
        {
            return Some(address(n));
        }
        let n = (FIRST..=LAST).find(|n| !self.used.contains(n))?;
        self.used.insert(n);
        Some(address(n))
    }

    /// Gives `ip` back for later pods.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(n) = host_part(ip) {
            self.used.remove(&n);
        }
    }
}

fn address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

fn host_part(ip: Ipv4Addr) -> Option<u8> {
    let [a, b, c, n] = ip.octets();
    ((a, b, c) == (127, 0, 0) && (FIRST..=LAST).contains(&n)).then_some(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_start_at_127_0_0_2_and_are_unique() {
        let mut pool = IpPool::default();
        let a = pool.allocate(None).unwrap();
        let b = pool.allocate(None).unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(b, Ipv4Addr::new(127, 0, 0, 3));
    }

    #[test]
    fn a_released_address_is_reused_first() {
        let mut pool = IpPool::default();
        let a = pool.allocate(None).unwrap();
        let _b = pool.allocate(None).unwrap();
        pool.release(a);
        assert_eq!(pool.allocate(None), Some(a));
    }

    #[test]
    fn a_free_preferred_address_is_kept_and_a_taken_or_foreign_one_is_not() {
        let mut pool = IpPool::default();
        assert_eq!(pool.allocate(Some(Ipv4Addr::new(127, 0, 0, 9))), Some(Ipv4Addr::new(127, 0, 0, 9)));
        assert_eq!(pool.allocate(Some(Ipv4Addr::new(127, 0, 0, 9))), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(pool.allocate(Some(Ipv4Addr::new(10, 0, 0, 9))), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(pool.allocate(Some(Ipv4Addr::new(127, 0, 0, 1))), Some(Ipv4Addr::new(127, 0, 0, 4)));
    }

    #[test]
    fn the_pool_runs_out_after_253_pods() {
        let mut pool = IpPool::default();
        for _ in 0..253 {
            assert!(pool.allocate(None).is_some());
        }
        assert_eq!(pool.allocate(None), None);
    }
}
