//! What each source address may cost in handshake work: the budgets the front door of
//! `handshake.rs` draws on.

use super::source_limit::{SourceLimiter, MAX_SOURCES};
use std::net::IpAddr;
use std::time::Instant;

/// Cookie replies a second one address may get, and at once.
const COOKIES_PER_SECOND: u32 = 100;
const COOKIE_BURST: u32 = 100;
/// Handshake messages a second one address may queue for the worker, and at once.
const QUEUED_PER_SECOND: u32 = 200;
const QUEUED_BURST: u32 = 200;
/// Handshake messages a second the data path refuses one address before it counts as
/// flooding (and at once).
const REFUSED_PER_SECOND: u32 = 1000;
/// What each source address may cost (see the handshake module's notes).
#[derive(Debug)]
pub(crate) struct Budgets {
    pub(super) proven: SourceLimiter,
    pub(super) unproven: SourceLimiter,
    pub(super) cookies: SourceLimiter,
    /// Messages the data path queues for the worker: above what the others allow together.
    pub(super) queued: SourceLimiter,
    /// Messages the data path refuses before the address counts as flooding.
    pub(super) refused: SourceLimiter,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            proven: SourceLimiter::for_handshakes(),
            unproven: SourceLimiter::for_handshakes(),
            cookies: SourceLimiter::new(COOKIES_PER_SECOND, COOKIE_BURST, MAX_SOURCES),
            queued: SourceLimiter::new(QUEUED_PER_SECOND, QUEUED_BURST, MAX_SOURCES),
            refused: SourceLimiter::new(REFUSED_PER_SECOND, REFUSED_PER_SECOND, MAX_SOURCES),
        }
    }
}

impl Budgets {
    /// Whether every budget `message` could draw on is spent for `ip`: a few lookups, no
    /// hashing. An all-zero mac2 (the sender holds no cookie) cannot draw on `proven`.
    pub(super) fn spent(&self, message: &[u8], ip: IpAddr, now: Instant, under_load: bool) -> bool {
        !self.cookies.has_token(ip, now)
            && (under_load || !self.unproven.has_token(ip, now))
            && (!has_mac2(message) || !self.proven.has_token(ip, now))
    }
}

/// Whether a handshake message's mac2 (its last 16 bytes) is set: its sender holds a cookie.
pub(super) fn has_mac2(message: &[u8]) -> bool {
    message.len() >= 16 && message[message.len() - 16..] != [0; 16]
}
