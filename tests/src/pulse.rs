//! A steady trickle of numbered UDP datagrams from one namespace to another, with the time
//! each one arrived: when did traffic stop, and when did it flow again.

use crate::transfer::spawn_in_netns;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A sender in one namespace and a receiver in another; both stop on drop.
pub struct Pulse {
    stop: Arc<AtomicBool>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    threads: Vec<JoinHandle<Result<(), String>>>,
}

impl Pulse {
    /// Sends a datagram to `dst` from namespace `from` every `every`, received in namespace
    /// `to` on every address at `dst`'s port. Returns once the receiver is bound.
    pub fn start(from: &str, to: &str, dst: SocketAddr, every: Duration) -> Result<Pulse, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let bind = SocketAddr::new(
            if dst.is_ipv4() {
                [0, 0, 0, 0].into()
            } else {
                [0u16; 8].into()
            },
            dst.port(),
        );
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (s, got) = (Arc::clone(&stop), Arc::clone(&arrivals));
        let receiver = spawn_in_netns(to, move || {
            let sock = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"));
            let sock = match sock.and_then(|sock| {
                sock.set_read_timeout(Some(Duration::from_millis(20)))
                    .map(|()| sock)
                    .map_err(|e| e.to_string())
            }) {
                Ok(sock) => {
                    let _ = bound_tx.send(Ok(()));
                    sock
                }
                Err(e) => {
                    let _ = bound_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let mut buf = [0u8; 64];
            while !s.load(Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok(_) => got.lock().map_err(|e| e.to_string())?.push(Instant::now()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(())
        });
        match bound_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("the pulse receiver did not start".into()),
        }
        let s = Arc::clone(&stop);
        let sender = spawn_in_netns(from, move || {
            let sock = UdpSocket::bind(SocketAddr::new(bind.ip(), 0)).map_err(|e| e.to_string())?;
            let mut seq = 0u64;
            while !s.load(Ordering::Relaxed) {
                seq += 1;
                // Unroutable while a node is down: that is the point, not an error.
                let _ = sock.send_to(&seq.to_le_bytes(), dst);
                std::thread::sleep(every);
            }
            Ok(())
        });
        Ok(Pulse {
            stop,
            arrivals,
            threads: vec![receiver, sender],
        })
    }

    /// The first arrival at or after `t`.
    pub fn first_after(&self, t: Instant) -> Option<Instant> {
        let got = self.arrivals.lock().ok()?;
        got.iter().copied().find(|&a| a >= t)
    }

    /// Waits up to `timeout` for an arrival at or after `t`; returns how long after `t` it came.
    pub fn wait_after(&self, t: Instant, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.first_after(t) {
                return Some(a - t);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The longest time between two arrivals after `t` (up to now).
    pub fn longest_gap_after(&self, t: Instant) -> Duration {
        let got = self.arrivals.lock().map(|g| g.clone()).unwrap_or_default();
        let mut last = t;
        let mut gap = Duration::ZERO;
        for a in got.into_iter().filter(|&a| a >= t) {
            gap = gap.max(a - last);
            last = a;
        }
        gap.max(Instant::now().saturating_duration_since(last))
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
