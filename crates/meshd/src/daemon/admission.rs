//! Who may hold a connection to one listener: at most a fixed number at once, and a new client
//! is always let in: when all places are taken, the oldest idle connection is closed for it.
//!
//! - Idle: waiting for the client to send (a request, or the rest of one). A client that sends
//!   nothing is the first to go, so hundreds of silent or reconnecting clients cannot keep a
//!   real one out.
//! - A connection not yet served is not idle: it has had no chance to read what its client
//!   sent. The accept loops yield after each connection, so it gets that chance at once.
//! - When none is idle (every connection is mid-reply), the oldest connection goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// The connections of one listener.
pub(crate) struct Admission {
    cap: usize,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    next: u64,
    /// By admission order: the first entry is the oldest.
    conns: BTreeMap<u64, Conn>,
    evicted: u64,
}

struct Conn {
    idle: bool,
    evict: Arc<Notify>,
}

/// One admitted connection's place; dropping it frees the place.
pub(crate) struct Ticket {
    id: u64,
    admission: Arc<Admission>,
    evict: Arc<Notify>,
}

impl Admission {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            live: Mutex::new(Live::default()),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection (not idle until it waits for its client), closing the
    /// oldest idle connection (else the oldest) when all places are taken.
    pub(crate) fn admit(self: &Arc<Self>) -> Ticket {
        let mut live = self.live();
        while live.conns.len() >= self.cap {
            let victim = live
                .conns
                .iter()
                .find(|(_, c)| c.idle)
                .or_else(|| live.conns.iter().next())
                .map(|(id, _)| *id);
            let Some(conn) = victim.and_then(|id| live.conns.remove(&id)) else {
                break;
            };
            conn.evict.notify_one();
            live.evicted += 1;
        }
        let id = live.next;
        live.next += 1;
        let evict = Arc::new(Notify::new());
        live.conns.insert(
            id,
            Conn {
                idle: false,
                evict: Arc::clone(&evict),
            },
        );
        Ticket {
            id,
            admission: Arc::clone(self),
            evict,
        }
    }

    /// Connections holding a place now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.live().conns.len()
    }

    /// Connections closed so far to make room for a newer one.
    #[cfg(test)]
    fn evicted(&self) -> u64 {
        self.live().evicted
    }
}

impl Ticket {
    /// Marks the connection idle (waiting for its client) or busy (answering it).
    pub(crate) fn set_idle(&self, idle: bool) {
        if let Some(c) = self.admission.live().conns.get_mut(&self.id) {
            c.idle = idle;
        }
    }

    /// Completes once this connection has been chosen to make room for a newer one.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.live().conns.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `t` has been told to close, without waiting.
    fn told(t: &Ticket) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(rt) = rt else { return false };
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(20), t.evicted())
                .await
                .is_ok()
        })
    }

    #[test]
    fn a_newcomer_is_always_let_in_and_the_oldest_idle_one_goes() {
        let a = Admission::new(3);
        let first = a.admit();
        let second = a.admit();
        let third = a.admit();
        second.set_idle(true);
        third.set_idle(true); // `first` is mid-reply: spared while another one is idle
        let fourth = a.admit();
        assert_eq!(a.held(), 3);
        assert!(!told(&first));
        assert!(told(&second), "the oldest idle connection makes room");
        assert!(!told(&third));
        drop(second);
        assert_eq!(
            a.held(),
            3,
            "dropping an evicted ticket frees nothing twice"
        );
        third.set_idle(false);
        fourth.set_idle(false);
        let _fifth = a.admit();
        assert!(told(&first), "with none idle, the oldest goes");
        let sixth = a.admit();
        assert!(
            told(&third),
            "a new connection not yet served counts as busy"
        );
        drop(sixth);
        assert_eq!(a.evicted(), 3);
    }

    #[test]
    fn places_are_freed_when_tickets_drop() {
        let a = Admission::new(2);
        for _ in 0..1000 {
            let t = a.admit();
            drop(t);
        }
        assert_eq!(a.held(), 0);
        assert_eq!(a.evicted(), 0);
        let kept: Vec<Ticket> = (0..1000).map(|_| a.admit()).collect();
        assert_eq!(a.held(), 2, "never more than the cap, however many arrive");
        assert_eq!(a.evicted(), 998);
        drop(kept);
        assert_eq!(a.held(), 0);
    }
}
