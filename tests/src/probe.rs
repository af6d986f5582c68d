//! Connection probes for firewall tests: a TCP listener that accepts (and records) every
//! connection, and a single TCP connect attempt that says whether a SYN-ACK came back.
//!
//! Both run on threads inside a namespace (`setns`), with plain std sockets, like
//! [`crate::transfer`].

use crate::transfer::spawn_in_netns;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A TCP listener on a thread inside a namespace, accepting every connection (and closing it at
/// once), recording each client's address. Stopped on drop.
#[derive(Debug)]
pub struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<SocketAddr>>>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl Listener {
    /// Binds `bind` (e.g. `0.0.0.0:3306`) in namespace `ns`; returns once it listens.
    pub fn start(ns: &str, bind: SocketAddr) -> Result<Listener, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (bound_tx, bound_rx) = mpsc::channel::<Result<(), String>>();
        let (s, a) = (stop.clone(), accepted.clone());
        let label = format!("{bind} in {ns}");
        let handle = spawn_in_netns(ns, move || {
            let l = TcpListener::bind(bind)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("listen on {label}: {e}"));
            let l = match l {
                Ok(l) => {
                    let _ = bound_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = bound_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((stream, peer)) => {
                        if let Ok(mut v) = a.lock() {
                            v.push(peer);
                        }
                        drop(stream);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("accept on {label}: {e}")),
                }
            }
            Ok(())
        });
        match bound_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Listener {
                addr: bind,
                stop,
                accepted,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("listener {bind} in {ns} did not start")),
        }
    }

    /// Like [`Listener::start`], panicking on failure.
    pub fn must(ns: &str, bind: SocketAddr) -> Listener {
        Self::start(ns, bind).expect("start a TCP listener")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client addresses of every connection accepted so far.
    pub fn accepted(&self) -> Vec<SocketAddr> {
        self.accepted.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until a connection from exactly `client` (address and port) has been accepted.
    pub fn wait_accepted_from(&self, client: SocketAddr, timeout: Duration) -> bool {
        crate::setup::wait_until(timeout, || self.accepted().contains(&client))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What one TCP connect attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    /// The three-way handshake completed; the local address the client used.
    Connected(SocketAddr),
    /// No SYN-ACK (nor anything else) within the timeout: the SYN was dropped somewhere.
    TimedOut,
    /// A RST came back (no listener, or a `reject`).
    Refused,
    /// Anything else (e.g. EHOSTUNREACH, ENETUNREACH), with the error.
    Failed(String),
}

impl Connect {
    pub fn is_connected(&self) -> bool {
        matches!(self, Connect::Connected(_))
    }
}

/// One connect attempt from namespace `ns` to `dst`, waiting at most `timeout` for the SYN-ACK.
/// An established connection is closed at once.
pub fn tcp_connect(ns: &str, dst: SocketAddr, timeout: Duration) -> Connect {
    let h = spawn_in_netns(ns, move || {
        Ok(match TcpStream::connect_timeout(&dst, timeout) {
            Ok(s) => match s.local_addr() {
                Ok(local) => Connect::Connected(local),
                Err(e) => Connect::Failed(format!("local_addr: {e}")),
            },
            Err(e) => match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Connect::TimedOut,
                io::ErrorKind::ConnectionRefused => Connect::Refused,
                _ => Connect::Failed(e.to_string()),
            },
        })
    });
    match h.join() {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => Connect::Failed(e),
        Err(_) => Connect::Failed("connect thread panicked".into()),
    }
}

/// Connect attempts of `attempt` each until one connects or `patience` has passed (a first
/// handshake may hold up the first SYNs). Returns the last outcome.
pub fn tcp_connect_patiently(
    ns: &str,
    dst: SocketAddr,
    attempt: Duration,
    patience: Duration,
) -> Connect {
    let deadline = Instant::now() + patience;
    loop {
        let c = tcp_connect(ns, dst, attempt);
        if c.is_connected() || Instant::now() >= deadline {
            return c;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// `ping -c count -i interval` from `ns`: the number of replies received (parsed from ping's
/// summary line; 0 when there is none).
pub fn ping_replies(ns: &crate::Netns, addr: std::net::IpAddr, count: u32, interval: &str) -> u32 {
    let (c, a) = (count.to_string(), addr.to_string());
    let out = ns.exec(&["ping", "-n", "-q", "-c", &c, "-i", interval, "-W", "1", &a]);
    parse_received(&String::from_utf8_lossy(&out.stdout)).unwrap_or(0)
}

fn parse_received(out: &str) -> Option<u32> {
    // "40 packets transmitted, 9 received, 77.5% packet loss, time 1950ms"
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let part = line
        .split(',')
        .find(|p| p.trim_end().ends_with("received"))?;
    part.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_ping_summary() {
        let out = "--- 192.0.2.1 ping statistics ---\n\
                   40 packets transmitted, 9 received, 77.5% packet loss, time 1950ms\n";
        assert_eq!(super::parse_received(out), Some(9));
        let out = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2ms\n";
        assert_eq!(super::parse_received(out), Some(0));
        assert_eq!(super::parse_received("nothing"), None);
    }
}
