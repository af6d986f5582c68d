//! A token bucket per source address: what one sender may cost in handshake work.
//!
//! - Sources are IPv4 addresses and IPv6 /64s (one host usually holds a whole /64).
//! - Each bucket refills at `per_second` up to `burst`; a message takes one token.
//! - The table is bounded: idle buckets (full again) are swept, and a new source that finds
//!   the table full is refused until a sweep makes room, so memory stays flat whatever the
//!   number of sources.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Handshakes a second one source may cost, and how many at once (the kernel's figures).
pub(crate) const HANDSHAKES_PER_SECOND: u32 = 20;
pub(crate) const HANDSHAKE_BURST: u32 = 5;
/// Sources tracked at once.
pub(crate) const MAX_SOURCES: usize = 8192;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in nanoseconds of refill (one token is `cost`).
    tokens: u64,
    last: Instant,
}

#[derive(Debug)]
pub struct SourceLimiter {
    buckets: HashMap<u64, Bucket>,
    /// Nanoseconds of refill one message costs.
    cost: u64,
    max_tokens: u64,
    capacity: usize,
}

/// The key of `ip`'s bucket: the IPv4 address, or the IPv6 address's /64 (tagged apart).
fn source(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4)),
            None => (u128::from(a) >> 64) as u64 | (1 << 63),
        },
    }
}

impl SourceLimiter {
    pub fn new(per_second: u32, burst: u32, capacity: usize) -> Self {
        let cost = 1_000_000_000 / u64::from(per_second.max(1));
        Self {
            buckets: HashMap::new(),
            cost,
            max_tokens: cost * u64::from(burst.max(1)),
            capacity,
        }
    }

    /// The kernel's budget: 20 a second, bursts of 5, 8192 sources.
    pub fn for_handshakes() -> Self {
        Self::new(HANDSHAKES_PER_SECOND, HANDSHAKE_BURST, MAX_SOURCES)
    }

    /// Takes a token from `ip`'s bucket; `false` if it has none (or the table is full).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = source(ip);
        let (cost, max) = (self.cost, self.max_tokens);
        if let Some(b) = self.buckets.get_mut(&key) {
            let refill = now.saturating_duration_since(b.last).as_nanos();
            b.tokens = (u128::from(b.tokens) + refill).min(u128::from(max)) as u64;
            b.last = now;
            return match b.tokens.checked_sub(cost) {
                Some(left) => {
                    b.tokens = left;
                    true
                }
                None => false,
            };
        }
        if self.buckets.len() >= self.capacity {
            self.sweep(now);
            if self.buckets.len() >= self.capacity {
                return false;
            }
        }
        self.buckets.insert(
            key,
            Bucket {
                tokens: max - cost,
                last: now,
            },
        );
        true
    }

    /// Whether `ip`'s bucket has a token now, without taking it (a source not tracked yet has).
    pub fn has_token(&self, ip: IpAddr, now: Instant) -> bool {
        self.buckets.get(&source(ip)).is_none_or(|b| {
            let refill = now.saturating_duration_since(b.last).as_nanos();
            u128::from(b.tokens) + refill >= u128::from(self.cost)
        })
    }

    /// Forgets buckets that have refilled (their sources idle for a burst's worth of time).
    pub fn sweep(&mut self, now: Instant) {
        let full = Duration::from_nanos(self.max_tokens);
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < full);
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("a test address")
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut l = SourceLimiter::new(20, 5, 100);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        let granted = (0..50).filter(|_| l.allow(a, t0)).count();
        assert_eq!(granted, 5);
        // 50 ms refills one token at 20 a second.
        assert!(!l.has_token(a, t0 + Duration::from_millis(49)));
        assert!(l.has_token(a, t0 + Duration::from_millis(50)));
        assert!(l.allow(a, t0 + Duration::from_millis(50)));
        assert!(!l.allow(a, t0 + Duration::from_millis(50)));
        assert!(
            l.has_token(ip("192.0.2.99"), t0),
            "an unknown source has a token"
        );
        // Over one second at a thousand tries a second, about the rate gets through.
        let granted = (1..=1000)
            .filter(|ms| l.allow(a, t0 + Duration::from_millis(50 + ms)))
            .count();
        assert!((19..=21).contains(&granted), "{granted}");
    }

    #[test]
    fn sources_are_apart_but_one_ipv6_64_is_one_source() {
        let mut l = SourceLimiter::new(20, 1, 100);
        let t0 = Instant::now();
        assert!(l.allow(ip("192.0.2.1"), t0));
        assert!(!l.allow(ip("192.0.2.1"), t0));
        assert!(l.allow(ip("192.0.2.2"), t0));
        assert!(l.allow(ip("2001:db8:1:2::1"), t0));
        assert!(!l.allow(ip("2001:db8:1:2:ffff::9"), t0));
        assert!(l.allow(ip("2001:db8:1:3::1"), t0));
        // A v4-mapped address is that IPv4 source.
        assert!(!l.allow(ip("::ffff:192.0.2.2"), t0));
    }

    #[test]
    fn the_table_stays_bounded_and_idle_sources_make_room() {
        let mut l = SourceLimiter::new(20, 5, 10);
        let t0 = Instant::now();
        for i in 0..10u8 {
            assert!(l.allow(IpAddr::from([198, 51, 100, i]), t0));
        }
        // Full, and nobody idle yet: a new source waits.
        assert!(!l.allow(ip("198.51.100.200"), t0));
        assert_eq!(l.len(), 10);
        // Once the others have refilled, they are swept and the newcomer gets in.
        assert!(l.allow(ip("198.51.100.200"), t0 + Duration::from_secs(1)));
        assert_eq!(l.len(), 1);
    }
}
