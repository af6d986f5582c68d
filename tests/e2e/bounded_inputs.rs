//! Hostile local input: `meshd check` refuses a config that is not a regular file (`/dev/zero`,
//! a FIFO, a directory), one over the size limit and one of millions of tiny YAML values, fast
//! and with a clear error; a key file or standard input that never ends is refused too. A
//! running meshd answers `meshd peers`, the UAPI socket and a scrape within 1 s while hundreds
//! of idle or reconnecting clients hold connections to its control socket and metrics port.

use meshd_e2e::command::{output_with_timeout, TimedOutput};
use meshd_e2e::scrape::{daemon_socket, http_raw, unix_request};
use meshd_e2e::setup::meshd_bin;
use meshd_e2e::topo::{endpoint, overlay_cidr, pair, Host};
use meshd_e2e::transfer::spawn_in_netns;
use meshd_e2e::{require_root, MeshFiles, MeshSpec, Meshd, TempDir};
use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The config size limit (`MAX_CONFIG_BYTES`).
const LIMIT: u64 = 32 << 20;
/// Clients held open against each endpoint.
const CLIENTS: usize = 500;
/// How fast an answer must come while they are there.
const WITHIN: Duration = Duration::from_secs(1);
const METRICS: &str = "127.0.0.1:9586";
const CONTROL: &str = "/run/meshd/meshd0.sock";
const UAPI: &str = "/run/wireguard/meshd0.sock";

fn mesh() -> MeshSpec {
    let mut m = MeshSpec::new();
    m.node("alpha", "10.100.0.1/24", Some("192.0.2.1:51820"));
    m.node("bravo", "10.100.0.2/24", Some("192.0.2.2:51820"));
    m.rule_both("alpha", "bravo", &["any"]);
    m
}

/// `meshd check --config CONFIG --node alpha`, killed after 20 s.
fn check(config: &Path, dir: &Path) -> (TimedOutput, Duration) {
    let started = Instant::now();
    let mut cmd = Command::new(meshd_bin());
    cmd.args(["check", "--node", "alpha", "--config"])
        .arg(config);
    let out = output_with_timeout(&mut cmd, dir, Duration::from_secs(20));
    (out, started.elapsed())
}

/// Asserts that `check` on `config` failed within 10 s, exit 1, with `expect` on stderr.
fn assert_refused(config: &Path, dir: &Path, expect: &[&str]) {
    let (out, took) = check(config, dir);
    let report = format!(
        "{}: status {:?} after {took:?}\nstderr:\n{}",
        config.display(),
        out.status,
        out.stderr.chars().take(2000).collect::<String>()
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{report}");
    assert!(took < Duration::from_secs(10), "too slow: {report}");
    for e in expect {
        assert!(out.stderr.contains(e), "no `{e}` in {report}");
    }
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status();
    assert!(st.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
}

#[test]
fn check_refuses_what_is_not_a_config_file_fast() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let zero = Path::new("/dev/zero");
    assert_refused(
        zero,
        dir.path(),
        &["cannot read config file /dev/zero: it is a character device, not a regular file"],
    );
    let fifo = dir.join("fifo.yaml");
    mkfifo(&fifo);
    assert_refused(
        &fifo,
        dir.path(),
        &["it is a FIFO (named pipe), not a regular file"],
    );
    assert_refused(
        dir.path(),
        dir.path(),
        &["it is a directory, not a regular file"],
    );

    // Over the limit: a valid mesh padded with a comment, and a sparse file never read.
    let big = dir.join("big.yaml");
    let mut text = mesh().to_yaml();
    text.push('#');
    text.push_str(&" ".repeat(LIMIT as usize));
    text.push('\n');
    assert!(std::fs::write(&big, &text).is_ok());
    assert_refused(
        &big,
        dir.path(),
        &[&format!("more than the limit of {LIMIT} bytes")],
    );
    let sparse = dir.join("sparse.yaml");
    let f = std::fs::File::create(&sparse).expect("create sparse.yaml");
    assert!(f.set_len(50 << 30).is_ok());
    assert_refused(
        &sparse,
        dir.path(),
        &["it is 53687091200 bytes, more than the limit"],
    );

    // Under the size limit, but three million list items: refused at the item past the limit
    // of one list's entries, with its line and column, before a tree of them is built.
    let items = dir.join("items.yaml");
    let mut text = String::from("nodes:\n");
    text.push_str(&"- a\n".repeat(3_000_000));
    assert!(std::fs::write(&items, &text).is_ok());
    let at = format!(
        "{}:1048578:3: (yaml): this list has more than 1048576 entries",
        items.display()
    );
    assert_refused(&items, dir.path(), &[&at]);
    // Three lists of a million: refused at the value past the file's limit.
    let lists = dir.join("lists.yaml");
    let mut text = String::new();
    for key in ["nodes", "policy", "admin", "interface"] {
        text.push_str(key);
        text.push_str(":\n");
        text.push_str(&"- a\n".repeat(1_000_000));
    }
    assert!(std::fs::write(&lists, &text).is_ok());
    assert_refused(
        &lists,
        dir.path(),
        &["the file holds more than 3000000 YAML values"],
    );

    // The limit itself is not a hard edge for a real mesh: one right under it passes.
    let ok = dir.join("ok.yaml");
    let mut text = mesh().to_yaml();
    let pad = LIMIT as usize - text.len() - 2;
    text.push('#');
    text.push_str(&" ".repeat(pad));
    text.push('\n');
    assert_eq!(text.len() as u64, LIMIT);
    assert!(std::fs::write(&ok, &text).is_ok());
    let (out, _) = check(&ok, dir.path());
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "a mesh of exactly the limit: {}",
        out.stderr
    );
}

#[test]
fn endless_key_input_is_refused() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let files = mesh().write();
    // A key "file" that is a FIFO nobody writes to: refused, not waited on.
    let fifo = dir.join("key");
    mkfifo(&fifo);
    assert!(
        std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .is_ok()
    );
    let mut cmd = Command::new(meshd_bin());
    cmd.args(["check", "--config"])
        .arg(&files.config)
        .arg("--private-key")
        .arg(&fifo);
    let out = output_with_timeout(&mut cmd, dir.path(), Duration::from_secs(10));
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);

    // `meshd pubkey < /dev/zero` stops reading by itself.
    let zero = std::fs::File::open("/dev/zero").expect("open /dev/zero");
    let child = Command::new(meshd_bin())
        .arg("pubkey")
        .stdin(zero)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshd pubkey");
    let pid = child.id();
    let waiter = thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiter.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    if !waiter.is_finished() {
        meshd_e2e::process::kill_pid(pid, libc::SIGKILL);
        panic!("meshd pubkey < /dev/zero still reading after 10 s");
    }
    let out = waiter
        .join()
        .expect("waiter panicked")
        .expect("wait for meshd pubkey");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("more than the limit of 4096 bytes"),
        "{stderr}"
    );
}

/// The node's endpoints as the test reaches them.
struct Endpoints {
    ns: String,
    metrics: SocketAddr,
    control: std::path::PathBuf,
    uapi: std::path::PathBuf,
}

impl Endpoints {
    fn of(node: &Meshd, ns: &str) -> Endpoints {
        Endpoints {
            ns: ns.to_string(),
            metrics: METRICS.parse().unwrap(),
            control: daemon_socket(node.pid(), CONTROL),
            uapi: daemon_socket(node.pid(), UAPI),
        }
    }

    /// `TCP connect` to the metrics port from inside the namespace, `n` times.
    fn metrics_clients(&self, n: usize) -> Vec<TcpStream> {
        let addr = self.metrics;
        spawn_in_netns(&self.ns, move || {
            (0..n)
                .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("connect thread panicked".into()))
        .expect("connect to the metrics endpoint")
    }

    fn control_clients(&self, n: usize) -> Vec<UnixStream> {
        (0..n)
            .map(|_| UnixStream::connect(&self.control))
            .collect::<Result<Vec<_>, _>>()
            .expect("connect to the control socket")
    }

    /// `meshd peers`, a UAPI `get` and a scrape, each answered (and correct) within [`WITHIN`].
    fn assert_answer(&self, node: &Meshd, when: &str) {
        let bin = meshd_bin().to_string_lossy().into_owned();
        let started = Instant::now();
        let out = node.exec(&[&bin, "peers"]);
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("bravo"),
            "{when}: meshd peers failed after {took:?}: {stderr}{stdout}"
        );
        assert!(took < WITHIN, "{when}: meshd peers took {took:?}");

        let started = Instant::now();
        let reply = unix_request(&self.uapi, b"get=1\n\n", |r| r.ends_with(b"\n\n"))
            .unwrap_or_else(|e| panic!("{when}: uapi get: {e}"));
        let took = started.elapsed();
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.contains("listen_port=51820") && reply.ends_with("errno=0\n\n"),
            "{when}: uapi get after {took:?}: {reply}"
        );
        assert!(took < WITHIN, "{when}: uapi get took {took:?}");

        let started = Instant::now();
        let reply = http_raw(&self.ns, self.metrics, b"GET /metrics HTTP/1.1\r\n\r\n")
            .unwrap_or_else(|e| panic!("{when}: scrape: {e}"));
        let took = started.elapsed();
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.contains("meshd_"),
            "{when}: scrape after {took:?}: {}",
            reply.chars().take(300).collect::<String>()
        );
        assert!(took < WITHIN, "{when}: scrape took {took:?}");
    }
}

/// A running node `alpha` (its peer `bravo` is never started), with what it needs kept alive.
struct Running {
    // Field order is drop order: the node stops before its files and namespaces go.
    node: Meshd,
    _files: MeshFiles,
    a: Host,
    _b: Host,
}

fn start() -> Running {
    let (a, b) = pair(false);
    let mut m = MeshSpec::new();
    m.metrics = METRICS.into();
    m.node(
        "alpha",
        &overlay_cidr(1, false),
        Some(&endpoint(a.addr, 51820)),
    );
    m.node(
        "bravo",
        &overlay_cidr(2, false),
        Some(&endpoint(b.addr, 51820)),
    );
    m.rule_both("alpha", "bravo", &["any"]);
    let files = m.write();
    let node = Meshd::start(&a.ns, &files, "alpha");
    Running {
        node,
        _files: files,
        a,
        _b: b,
    }
}

#[test]
fn endpoints_answer_with_hundreds_of_idle_clients() {
    if !require_root() {
        return;
    }
    let r = start();
    let node = &r.node;
    let ep = Endpoints::of(node, r.a.ns.name());
    ep.assert_answer(node, "before the clients");
    let control = ep.control_clients(CLIENTS);
    let uapi: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| UnixStream::connect(&ep.uapi))
        .collect::<Result<_, _>>()
        .expect("connect to the UAPI socket");
    let metrics = ep.metrics_clients(CLIENTS);
    // One client that sent half a request and stalls is idle too.
    let mut half = ep.metrics_clients(1);
    for s in &mut half {
        let _ = s.write_all(b"GET /metr");
    }
    for round in 0..3 {
        ep.assert_answer(
            node,
            &format!("with {CLIENTS} idle clients each, round {round}"),
        );
    }
    drop((control, uapi, metrics, half));
    ep.assert_answer(node, "after the clients left");
}

/// Holds `n` connections made by `connect`, replacing the oldest with a new one in a loop,
/// until `stop`.
fn churn<S: Send + 'static>(
    n: usize,
    stop: Arc<AtomicBool>,
    connect: impl Fn() -> Option<S> + Send + 'static,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut held: VecDeque<S> = VecDeque::new();
        let mut made = 0;
        while !stop.load(Ordering::Relaxed) {
            if held.len() >= n {
                held.pop_front();
            }
            match connect() {
                Some(s) => {
                    held.push_back(s);
                    made += 1;
                }
                None => thread::sleep(Duration::from_millis(5)),
            }
        }
        made
    })
}

#[test]
fn endpoints_answer_while_hundreds_of_clients_reconnect() {
    if !require_root() {
        return;
    }
    let r = start();
    let node = &r.node;
    let ep = Endpoints::of(node, r.a.ns.name());
    let stop = Arc::new(AtomicBool::new(false));
    let mut churners = Vec::new();
    for _ in 0..2 {
        let path = ep.control.clone();
        churners.push(churn(CLIENTS / 2, Arc::clone(&stop), move || {
            UnixStream::connect(&path).ok()
        }));
        let (ns, addr) = (ep.ns.clone(), ep.metrics);
        let stop2 = Arc::clone(&stop);
        churners.push(thread::spawn(move || {
            spawn_in_netns(&ns, move || {
                let h = churn(CLIENTS / 2, stop2, move || {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
                });
                h.join().map_err(|_| "churn panicked".to_string())
            })
            .join()
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0)
        }));
    }
    // Let the clients fill every place first.
    thread::sleep(Duration::from_secs(2));
    for round in 0..5 {
        ep.assert_answer(
            node,
            &format!("with {CLIENTS} clients reconnecting to each, round {round}"),
        );
        thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let made: usize = churners.into_iter().filter_map(|h| h.join().ok()).sum();
    assert!(
        made > 2 * CLIENTS,
        "the clients made only {made} connections"
    );
    ep.assert_answer(node, "after the clients left");
}
