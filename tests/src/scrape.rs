//! Reading a running meshd: an HTTP request to its metrics endpoint (from inside its network
//! namespace), a request on one of its Unix sockets (through `/proc/PID/root`, which enters
//! its private `/run`), and a Prometheus text-format parser for one sample.

use crate::transfer::spawn_in_netns;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request` (raw bytes) to `addr` inside `ns` and returns everything the server wrote
/// before closing.
pub fn http_raw(ns: &str, addr: SocketAddr, request: &[u8]) -> Result<String, String> {
    let request = request.to_vec();
    let h = spawn_in_netns(ns, move || {
        let mut s =
            TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
        s.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.write_all(&request).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    });
    h.join().map_err(|_| "http thread panicked".to_string())?
}

/// `GET /metrics` on `addr` inside `ns`: the body of a 200 reply.
pub fn scrape(ns: &str, addr: SocketAddr) -> String {
    let reply = http_raw(ns, addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap_or_else(|e| panic!("scrape {addr} in {ns}: {e}"));
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "scrape {addr}: {head}");
    body.to_string()
}

/// A Unix socket of the meshd with PID `pid`, as seen from here (its `/run` is private).
/// Give the real path: `/var/run` is an absolute symlink, which would resolve to our `/run`.
pub fn daemon_socket(pid: u32, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Writes `request` to the Unix socket and reads until `done(reply so far)` or EOF.
pub fn unix_request(
    path: &std::path::Path,
    request: &[u8],
    done: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while !done(&out) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", out.len())),
        }
    }
    Ok(out)
}

/// The value of the sample `name{labels}` in a Prometheus text exposition; the labels given
/// must all match (others may be present).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (n == name).then_some((rest, value))
        })
        .find(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|p| p == format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_samples_by_name_and_labels() {
        let t = "# HELP x y\nm_total{a=\"1\",b=\"2\"} 5\nm_total{a=\"1\",b=\"3\"} 7\nn 1.5\n";
        assert_eq!(super::sample(t, "m_total", &[("b", "3")]), Some(7.0));
        assert_eq!(
            super::sample(t, "m_total", &[("a", "1"), ("b", "2")]),
            Some(5.0)
        );
        assert_eq!(super::sample(t, "n", &[]), Some(1.5));
        assert_eq!(super::sample(t, "m_total", &[("b", "4")]), None);
        assert_eq!(super::sample(t, "m", &[]), None);
    }
}
