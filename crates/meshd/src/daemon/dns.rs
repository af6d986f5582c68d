//! Endpoints given as DNS names: resolved in the background, so a name that does not resolve
//! holds up no other peer, and again while the peer has no recent handshake, so a server
//! that moved is found.

use meshd_core::node::Peer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How soon to retry a name that did not resolve.
const RETRY: Duration = Duration::from_secs(5);
/// A handshake this recent means the endpoint works (or roamed): leave it alone.
const FRESH: Duration = Duration::from_secs(180);

/// The address to use among those a name resolves to: the first one of a family this node
/// has a socket for.
fn pick(addrs: impl Iterator<Item = SocketAddr>, have_v6: bool) -> Option<SocketAddr> {
    addrs.into_iter().find(|a| a.is_ipv4() || have_v6)
}

/// Follows the DNS name of `peer` until the task is aborted (a reload that changes or
/// removes the peer) or the daemon stops.
pub(crate) async fn follow(
    peer: Arc<Peer>,
    host: String,
    port: u16,
    // How often the name is looked up again while its peer has no recent handshake
    // (`interface.dns_refresh`).
    refresh: Duration,
    // Whether this node has an IPv6 socket to reach an IPv6 address with.
    have_v6: bool,
    // Called when the endpoint changes (first resolved, or moved), to start a handshake.
    changed: impl Fn(),
) {
    let mut failing = false;
    loop {
        let fresh = peer
            .status(std::time::Instant::now())
            .since_last_handshake
            .is_some_and(|d| d < FRESH);
        if fresh {
            tokio::time::sleep(refresh).await;
            continue;
        }
        let wait = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => match pick(addrs, have_v6) {
                Some(addr) => {
                    failing = false;
                    if peer.endpoint() != Some(addr) {
                        tracing::info!("resolved endpoint peer={} {host}={addr}", peer.plan.name);
                        peer.set_endpoint(addr);
                        changed();
                    }
                    refresh
                }
                None => {
                    if !failing {
                        tracing::warn!(
                            "endpoint {host} of peer {} has no address this node can reach",
                            peer.plan.name
                        );
                    }
                    failing = true;
                    RETRY
                }
            },
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "cannot resolve endpoint {host} of peer {}: {e}",
                        peer.plan.name
                    );
                }
                failing = true;
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_family_this_node_can_send_to() {
        let v6: SocketAddr = "[2001:db8::1]:51820".parse().unwrap();
        let v4: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        assert_eq!(pick([v6, v4].into_iter(), false), Some(v4));
        assert_eq!(pick([v6, v4].into_iter(), true), Some(v6));
        assert_eq!(pick([v6].into_iter(), false), None);
    }
}
