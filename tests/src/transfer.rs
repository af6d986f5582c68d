//! Traffic generators that need no external tools: a thread enters a namespace with
//! `setns(CLONE_NEWNET)` and opens ordinary std sockets there.
//!
//! TCP: the client sends N bytes of a deterministic pseudo-random stream; both ends hash what they
//! sent / received and the caller compares. UDP: a collector records every datagram that arrives;
//! a sender sends one datagram from a chosen source address.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Moves the calling thread into the network namespace `/run/netns/<ns>`.
pub fn enter_netns(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    let f = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: setns(2) on a valid namespace fd; with CLONE_NEWNET it changes only the network
    // namespace of the calling thread, which is the thread this closure owns.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns {path}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// Runs `f` on a new thread inside network namespace `ns`.
pub fn spawn_in_netns<T, F>(ns: &str, f: F) -> JoinHandle<Result<T, String>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let ns = ns.to_string();
    thread::spawn(move || {
        enter_netns(&ns)?;
        f()
    })
}

/// xorshift64*: a fast deterministic byte stream for payloads.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `buf` with the next bytes of the stream. The stream is the same however it is cut,
    /// as long as every chunk but the last has a length that is a multiple of 8.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let w = self.next_u64().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&w[..n]);
        }
    }
}

/// An order-sensitive 64-bit hash of a byte stream, independent of how the stream is split into
/// reads (8-byte words, rotate-xor-multiply).
#[derive(Debug, Clone)]
pub struct StreamHash {
    state: u64,
    pending: [u8; 8],
    npending: usize,
    len: u64,
}

impl Default for StreamHash {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHash {
    pub fn new() -> StreamHash {
        StreamHash {
            state: 0xcbf2_9ce4_8422_2325,
            pending: [0; 8],
            npending: 0,
            len: 0,
        }
    }

    fn mix(&mut self, w: u64) {
        self.state = (self.state.rotate_left(23) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.npending > 0 {
            let take = (8 - self.npending).min(data.len());
            self.pending[self.npending..self.npending + take].copy_from_slice(&data[..take]);
            self.npending += take;
            data = &data[take..];
            if self.npending < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.pending);
            self.mix(w);
            self.npending = 0;
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    /// The hash of everything so far (the length included).
    pub fn finish(&self) -> u64 {
        let mut h = self.clone();
        if h.npending > 0 {
            let mut w = [0u8; 8];
            w[..h.npending].copy_from_slice(&h.pending[..h.npending]);
            h.mix(u64::from_le_bytes(w));
        }
        h.mix(h.len);
        h.state ^ (h.state >> 31)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What one TCP transfer should do.
#[derive(Debug, Clone)]
pub struct TransferOpts {
    pub bytes: u64,
    pub seed: u64,
    /// Limit the sender to this many bytes per second (to keep a transfer running while the
    /// test changes something underneath it).
    pub pace: Option<u64>,
    /// How long to keep trying to connect (the first SYN may wait for a handshake).
    pub connect_timeout: Duration,
    /// A read or write that makes no progress for this long fails the transfer.
    pub stall_timeout: Duration,
}

impl TransferOpts {
    pub fn bytes(bytes: u64) -> TransferOpts {
        TransferOpts {
            bytes,
            seed: bytes ^ u64::from(std::process::id()),
            pace: None,
            connect_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// The outcome of a TCP transfer: both ends' view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    pub sent: u64,
    pub sent_hash: u64,
    pub received: u64,
    pub received_hash: u64,
    pub elapsed: Duration,
}

impl TransferReport {
    /// All bytes arrived, and the receiver's hash equals the sender's.
    pub fn is_intact(&self, expected_bytes: u64) -> bool {
        self.sent == expected_bytes
            && self.received == expected_bytes
            && self.sent_hash == self.received_hash
    }

    /// Throughput in Mbit/s, for the test output.
    pub fn mbit_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        self.received as f64 * 8.0 / secs / 1e6
    }
}

/// A TCP transfer in progress: a server thread in one namespace, a client thread in another.
#[derive(Debug)]
pub struct TcpTransfer {
    progress: Arc<AtomicU64>,
    expected: u64,
    started: Instant,
    server: mpsc::Receiver<Result<(u64, u64), String>>,
    client: mpsc::Receiver<Result<(u64, u64), String>>,
}

impl TcpTransfer {
    /// Listens on `dst` in `server_ns`, connects from `client_ns`, and starts sending. Returns once
    /// the listener is bound (the connection may still be in progress).
    pub fn start(
        server_ns: &str,
        client_ns: &str,
        dst: SocketAddr,
        opts: TransferOpts,
    ) -> Result<TcpTransfer, String> {
        let progress = Arc::new(AtomicU64::new(0));
        let (bound_tx, bound_rx) = mpsc::channel::<Result<(), String>>();
        let (srv_tx, srv_rx) = mpsc::channel();
        let (cli_tx, cli_rx) = mpsc::channel();

        let p = progress.clone();
        let o = opts.clone();
        let ns = server_ns.to_string();
        thread::spawn(move || {
            let r = (|| {
                enter_netns(&ns)?;
                let listener =
                    TcpListener::bind(dst).map_err(|e| format!("bind {dst} in {ns}: {e}"));
                let listener = match listener {
                    Ok(l) => {
                        let _ = bound_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                serve(listener, &o, &p)
            })();
            let _ = srv_tx.send(r);
        });
        match bound_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("server thread did not bind".into()),
        }

        let ns = client_ns.to_string();
        let o = opts.clone();
        thread::spawn(move || {
            let r = (|| {
                enter_netns(&ns)?;
                send(dst, &o)
            })();
            let _ = cli_tx.send(r);
        });

        Ok(TcpTransfer {
            progress,
            expected: opts.bytes,
            started: Instant::now(),
            server: srv_rx,
            client: cli_rx,
        })
    }

    /// Bytes the server has received so far.
    pub fn received(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Waits until the server has received at least `n` bytes. False on timeout.
    pub fn wait_received(&self, n: u64, timeout: Duration) -> bool {
        crate::setup::wait_until(timeout, || self.received() >= n)
    }

    /// Waits for both ends to finish (at most `timeout`).
    pub fn wait(self, timeout: Duration) -> Result<TransferReport, String> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let client = match self.client.recv_timeout(left()) {
            Ok(r) => r,
            Err(_) => Err(format!(
                "client did not finish within {timeout:?} ({} of {} bytes received)",
                self.received(),
                self.expected
            )),
        };
        let server = match self.server.recv_timeout(left()) {
            Ok(r) => r,
            Err(_) => Err(format!(
                "server did not finish within {timeout:?} ({} of {} bytes received)",
                self.received(),
                self.expected
            )),
        };
        let elapsed = self.started.elapsed();
        match (client, server) {
            (Ok((sent, sent_hash)), Ok((received, received_hash))) => Ok(TransferReport {
                sent,
                sent_hash,
                received,
                received_hash,
                elapsed,
            }),
            (c, s) => Err(format!("transfer failed: client: {c:?}; server: {s:?}")),
        }
    }
}

fn serve(
    listener: TcpListener,
    o: &TransferOpts,
    progress: &AtomicU64,
) -> Result<(u64, u64), String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener nonblocking: {e}"))?;
    // The client may retry for connect_timeout; allow a little more.
    let deadline = Instant::now() + o.connect_timeout + Duration::from_secs(5);
    let (mut stream, _) = loop {
        match listener.accept() {
            Ok(x) => break x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err("no connection arrived".into());
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(o.stall_timeout)))
        .map_err(|e| format!("socket setup: {e}"))?;
    let mut hash = StreamHash::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hash.update(&buf[..n]);
                progress.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "read after {} bytes: {e} (stalled for {:?}?)",
                    hash.len(),
                    o.stall_timeout
                ))
            }
        }
    }
    // Tell the client everything arrived: it waits for this before reporting success.
    let _ = stream.write_all(&hash.finish().to_le_bytes());
    Ok((hash.len(), hash.finish()))
}

fn send(dst: SocketAddr, o: &TransferOpts) -> Result<(u64, u64), String> {
    let deadline = Instant::now() + o.connect_timeout;
    let mut stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&dst, left.max(Duration::from_millis(100))) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("connect {dst}: {e} (for {:?})", o.connect_timeout))
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    };
    stream
        .set_write_timeout(Some(o.stall_timeout))
        .and_then(|()| stream.set_read_timeout(Some(o.stall_timeout)))
        .map_err(|e| format!("socket setup: {e}"))?;
    let mut prng = Prng::new(o.seed);
    let mut hash = StreamHash::new();
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < o.bytes {
        let n = (o.bytes - sent).min(buf.len() as u64) as usize;
        prng.fill(&mut buf[..n]);
        stream
            .write_all(&buf[..n])
            .map_err(|e| format!("write after {sent} bytes: {e}"))?;
        hash.update(&buf[..n]);
        sent += n as u64;
        if let Some(pace) = o.pace {
            let due = Duration::from_secs_f64(sent as f64 / pace.max(1) as f64);
            let now = started.elapsed();
            if due > now {
                thread::sleep(due - now);
            }
        }
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut ack = [0u8; 8];
    stream
        .read_exact(&mut ack)
        .map_err(|e| format!("waiting for the receiver's hash: {e}"))?;
    if u64::from_le_bytes(ack) != hash.finish() {
        return Err(format!(
            "receiver's hash {:#x} differs from the sender's {:#x}",
            u64::from_le_bytes(ack),
            hash.finish()
        ));
    }
    Ok((sent, hash.finish()))
}

/// Runs one TCP transfer to completion; panics with details unless it is intact.
pub fn assert_tcp_transfer(
    server_ns: &str,
    client_ns: &str,
    dst: SocketAddr,
    bytes: u64,
    timeout: Duration,
) -> TransferReport {
    let t = match TcpTransfer::start(server_ns, client_ns, dst, TransferOpts::bytes(bytes)) {
        Ok(t) => t,
        Err(e) => panic!("TCP transfer {client_ns} -> {dst} ({server_ns}): {e}"),
    };
    let r = match t.wait(timeout) {
        Ok(r) => r,
        Err(e) => panic!("TCP transfer {client_ns} -> {dst} ({server_ns}): {e}"),
    };
    assert!(
        r.is_intact(bytes),
        "TCP transfer {client_ns} -> {dst}: data corrupted or incomplete: {r:?}"
    );
    eprintln!(
        "TCP {client_ns} -> {dst}: {} bytes intact in {:.2?} ({:.0} Mbit/s)",
        r.received,
        r.elapsed,
        r.mbit_per_s()
    );
    r
}

/// One received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

/// A UDP socket bound in a namespace that records every datagram it receives.
#[derive(Debug)]
pub struct UdpCollector {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Datagram>>>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl UdpCollector {
    /// Binds `bind` in `ns` (returns once bound) and starts recording.
    pub fn start(ns: &str, bind: SocketAddr) -> Result<UdpCollector, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (bound_tx, bound_rx) = mpsc::channel();
        let (s, g) = (stop.clone(), got.clone());
        let handle = spawn_in_netns(ns, move || {
            let sock = match UdpSocket::bind(bind).and_then(|s| {
                s.set_read_timeout(Some(Duration::from_millis(50)))
                    .map(|()| s)
            }) {
                Ok(sock) => {
                    let _ = bound_tx.send(Ok(()));
                    sock
                }
                Err(e) => {
                    let msg = format!("bind udp {bind}: {e}");
                    let _ = bound_tx.send(Err(msg.clone()));
                    return Err(msg);
                }
            };
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if let Ok(mut v) = g.lock() {
                            v.push(Datagram {
                                from,
                                data: buf[..n].to_vec(),
                            });
                        }
                    }
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
            Ok(Ok(())) => Ok(UdpCollector {
                stop,
                got,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => match handle.join() {
                Ok(Err(e)) => Err(e),
                _ => Err("udp collector did not start".into()),
            },
        }
    }

    /// A copy of what arrived so far.
    pub fn received(&self) -> Vec<Datagram> {
        self.got.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether a datagram with exactly `payload` arrived.
    pub fn has(&self, payload: &[u8]) -> bool {
        self.received().iter().any(|d| d.data == payload)
    }

    /// Waits until a datagram with `payload` arrived. False on timeout.
    pub fn wait_for(&self, payload: &[u8], timeout: Duration) -> bool {
        crate::setup::wait_until(timeout, || self.has(payload))
    }

    /// Stops recording; returns everything that arrived.
    pub fn stop(mut self) -> Vec<Datagram> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.received()
    }
}

impl Drop for UdpCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Sends one datagram from `src` (an address of `ns`; port 0 = any) to `dst`, inside `ns`.
pub fn udp_send(ns: &str, src: IpAddr, dst: SocketAddr, payload: &[u8]) -> Result<(), String> {
    let payload = payload.to_vec();
    let h = spawn_in_netns(ns, move || {
        let sock =
            UdpSocket::bind(SocketAddr::new(src, 0)).map_err(|e| format!("bind {src}: {e}"))?;
        sock.send_to(&payload, dst)
            .map_err(|e| format!("send {src} -> {dst}: {e}"))?;
        Ok(())
    });
    match h.join() {
        Ok(r) => r,
        Err(_) => Err("udp sender thread panicked".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_independent_of_chunking() {
        let mut data = vec![0u8; 100_003];
        Prng::new(7).fill(&mut data);
        let mut whole = StreamHash::new();
        whole.update(&data);
        for step in [1usize, 3, 7, 8, 13, 4096, 65_537] {
            let mut h = StreamHash::new();
            for c in data.chunks(step) {
                h.update(c);
            }
            assert_eq!(h.finish(), whole.finish(), "step {step}");
            assert_eq!(h.len(), data.len() as u64);
        }
    }

    #[test]
    fn hash_detects_changes() {
        let mut data = vec![0u8; 4096];
        Prng::new(1).fill(&mut data);
        let base = {
            let mut h = StreamHash::new();
            h.update(&data);
            h.finish()
        };
        let mut flipped = data.clone();
        flipped[1000] ^= 1;
        let mut swapped = data.clone();
        swapped.swap(8, 16);
        let mut h = StreamHash::new();
        h.update(&data[..4095]);
        let short = h.finish();
        for (what, d) in [("flip", flipped), ("swap", swapped)] {
            let mut h = StreamHash::new();
            h.update(&d);
            assert_ne!(h.finish(), base, "{what}");
        }
        assert_ne!(short, base);
        // Two 8-byte words exchanged must change the hash too.
        let mut words = data.clone();
        let (a, b) = words.split_at_mut(8);
        a.copy_from_slice(&data[8..16]);
        b[..8].copy_from_slice(&data[..8]);
        let mut h = StreamHash::new();
        h.update(&words);
        assert_ne!(h.finish(), base);
    }

    #[test]
    fn prng_stream_is_independent_of_chunking() {
        let mut a = vec![0u8; 1000];
        Prng::new(3).fill(&mut a);
        let mut b = vec![0u8; 1000];
        let mut p = Prng::new(3);
        p.fill(&mut b[..512]);
        p.fill(&mut b[512..]);
        assert_eq!(a, b);
        let mut c = vec![0u8; 1000];
        Prng::new(4).fill(&mut c);
        assert_ne!(a, c);
    }
}
