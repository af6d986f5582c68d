//! The Unix socket servers: meshd's control socket (`/run/meshd/<iface>.sock`, JSON lines) and
//! the WireGuard UAPI (`/var/run/wireguard/<iface>.sock`, what `wg show` talks to).
//!
//! - Mode 0600 in a 0700 directory, so no other user can reach one between bind and chmod.
//! - Read-only views of the node (the control socket's `reload` aside).
//! - Bounded: garbage gets an error reply, a request slower than [`IDLE`] is closed, what one
//!   read can make the daemon owe is capped, and at most [`MAX_CONNECTIONS`] are held (the
//!   oldest idle one makes room for a new client).

use super::admission::{Admission, Ticket};
use super::state::Daemon;
use anyhow::{bail, Context, Result};
use meshd::api::snapshot::Snapshot;
use meshd::api::{control, uapi};
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;

/// Connections held at once per socket; a new one closes the oldest idle one.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A connection has this long to send a whole request (counted from its connect, then from
/// its last complete request), and a reply this long to be taken.
pub(crate) const IDLE: Duration = Duration::from_secs(30);
/// Replies owed to one connection at once (many requests in one read share one snapshot);
/// a client that asks for more is answered up to this and then closed.
const MAX_PENDING: usize = 1 << 20;

/// A bound socket whose file is removed when it is dropped (at shutdown).
pub(crate) struct Bound {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (mode 0600, its directory created 0700). A socket file left by a meshd that
/// died is replaced; one that answers belongs to a running meshd, and binding fails.
pub(crate) fn bind(path: &Path) -> Result<Bound> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // A directory that was already there keeps no looser mode than ours.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot chmod 0700 {}", dir.display()))?;
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            // Nobody listens: a meshd that died left it.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            }
            Ok(_) => bail!(
                "{} is in use: is another meshd running for this interface?",
                path.display()
            ),
            Err(e) => bail!("{} exists and cannot be checked: {e}", path.display()),
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod 0600 {}", path.display()))?;
    Ok(Bound {
        listener,
        path: path.to_path_buf(),
    })
}

/// One connection's protocol: its framing (bytes in, requests out) and its answers.
trait Protocol: Send + 'static {
    type Item: Send;
    /// The requests (or framing errors) `bytes` complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Self::Item>;
    /// The reply to one of them (a reload waits for the daemon to do it).
    fn answer(item: Self::Item, snap: &mut Lazy<'_>) -> impl Future<Output = Vec<u8>> + Send;
    /// The connection must close once its replies are written.
    fn is_closed(&self) -> bool;
}

/// One snapshot for all the requests of one read, taken only if one of them needs it.
struct Lazy<'a> {
    daemon: &'a Arc<Daemon>,
    snapshot: Option<Snapshot>,
}

impl Lazy<'_> {
    fn get(&mut self) -> &Snapshot {
        self.snapshot.get_or_insert_with(|| self.daemon.snapshot())
    }
}

/// What one read brought: the replies, whether it completed a request, and whether to close
/// after writing the replies (the protocol says so, or the connection is owed more than
/// [`MAX_PENDING`]).
struct Taken {
    reply: Vec<u8>,
    requests: bool,
    close: bool,
}

async fn take<P: Protocol>(proto: &mut P, bytes: &[u8], daemon: &Arc<Daemon>) -> Taken {
    let mut reply = Vec::new();
    let mut snap = Lazy {
        daemon,
        snapshot: None,
    };
    let items = proto.feed(bytes);
    let requests = !items.is_empty();
    for item in items {
        if reply.len() > MAX_PENDING {
            return Taken {
                reply,
                requests,
                close: true,
            };
        }
        reply.extend(P::answer(item, &mut snap).await);
    }
    Taken {
        reply,
        requests,
        close: proto.is_closed(),
    }
}

struct Control(control::ControlConn);

impl Protocol for Control {
    type Item = Result<control::Request, control::ControlError>;

    fn feed(&mut self, bytes: &[u8]) -> Vec<Self::Item> {
        self.0.feed(bytes)
    }

    async fn answer(item: Self::Item, snap: &mut Lazy<'_>) -> Vec<u8> {
        match item {
            Ok(control::Request::Query(q)) => control::answer(q, snap.get()),
            Ok(control::Request::Reload) => {
                let outcome = snap.daemon.reload().await;
                // What the reload changed is in what the next request sees.
                snap.snapshot = None;
                match outcome {
                    Ok(reloaded) => control::ok_line(&control::ReloadReply { reloaded }),
                    Err(e) => control::error_line(&format!("{e:#}")),
                }
            }
            Err(e) => control::error_line(&e),
        }
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

struct Uapi(uapi::UapiConn);

impl Protocol for Uapi {
    type Item = Result<uapi::Request, uapi::UapiError>;

    fn feed(&mut self, bytes: &[u8]) -> Vec<Self::Item> {
        self.0.feed(bytes)
    }

    async fn answer(item: Self::Item, snap: &mut Lazy<'_>) -> Vec<u8> {
        match item {
            Ok(req) => uapi::reply(req, snap.get()).into_bytes(),
            Err(e) => {
                tracing::debug!("uapi: {e}");
                e.reply().into_bytes()
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Serves one connection until it closes, misses its deadline or is evicted for a newer one.
async fn connection<P: Protocol>(
    mut stream: UnixStream,
    mut proto: P,
    daemon: &Arc<Daemon>,
    ticket: Ticket,
) {
    let mut buf = vec![0u8; 4096];
    let mut deadline = Instant::now() + IDLE;
    loop {
        ticket.set_idle(true);
        let n = tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => n,
            },
            () = ticket.evicted() => return,
        };
        ticket.set_idle(false);
        let taken = take(&mut proto, &buf[..n], daemon).await;
        if taken.requests {
            deadline = Instant::now() + IDLE;
        }
        if !taken.reply.is_empty() {
            let write = tokio::select! {
                w = tokio::time::timeout(IDLE, stream.write_all(&taken.reply)) => w,
                () = ticket.evicted() => return,
            };
            if !matches!(write, Ok(Ok(()))) {
                return;
            }
        }
        if taken.close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

async fn serve<P: Protocol>(bound: Bound, daemon: Arc<Daemon>, new: fn() -> P) -> Result<()> {
    let admission = Admission::new(MAX_CONNECTIONS);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = match bound.listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("accept on {}: {e}", bound.path.display());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let ticket = admission.admit();
        let daemon = Arc::clone(&daemon);
        conns.spawn(async move { connection(stream, new(), &daemon, ticket).await });
        // Let the new connection read what its client sent before the next one comes in (and
        // maybe evicts it); a flood of connects then cannot starve the connections it made.
        tokio::task::yield_now().await;
    }
}

pub(crate) async fn serve_control(bound: Bound, daemon: Arc<Daemon>) -> Result<()> {
    serve(bound, daemon, || Control(control::ControlConn::new())).await
}

pub(crate) async fn serve_uapi(bound: Bound, daemon: Arc<Daemon>) -> Result<()> {
    serve(bound, daemon, || Uapi(uapi::UapiConn::new())).await
}
