//! The metrics endpoint: `GET /metrics` on `interface.metrics` (loopback by default).
//!
//! - One response per connection, then closed; a slow or malformed client gets an error or a
//!   timeout.
//! - Only so many connections at once; the oldest idle one makes room for a new client.

use super::admission::{Admission, Ticket};
use super::state::Daemon;
use anyhow::{Context, Result};
use meshd::api::http::{self, Route, Status, MAX_HEAD};
use meshd::api::metrics;
use prometheus::process_collector::ProcessCollector;
use prometheus::Registry;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections held at once; a new one closes the oldest idle one.
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request and take the reply within this.
const DEADLINE: Duration = Duration::from_secs(5);
/// Connections the kernel queues until they are accepted: a burst of connects must not fill
/// the queue, or the next client's SYN is dropped and retried only a second later.
const BACKLOG: i32 = 1024;

const INDEX: &str = "meshd: metrics at /metrics\n";

/// Binds before the device exists, so the address may be the node's overlay address: with
/// IP_FREEBIND the socket accepts once the address appears.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        } else {
            socket.set_freebind_v4(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        TcpListener::from_std(socket.into())
    };
    listen().with_context(|| format!("cannot listen for metrics on {addr} (interface.metrics)"))
}

pub(crate) async fn serve(listener: TcpListener, daemon: Arc<Daemon>) -> Result<()> {
    let registry = Registry::new();
    registry.register(Box::new(ProcessCollector::for_self()))?;
    let registry = Arc::new(registry);
    let admission = Admission::new(MAX_CONNECTIONS);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let ticket = admission.admit();
        let (daemon, registry) = (Arc::clone(&daemon), Arc::clone(&registry));
        conns.spawn(async move {
            tokio::select! {
                _ = tokio::time::timeout(DEADLINE, handle(stream, &daemon, &registry, &ticket)) => {}
                () = ticket.evicted() => {}
            }
        });
        // Let the new connection read its request before the next one comes in (and maybe
        // evicts it); a flood of connects then cannot starve the connections it made.
        tokio::task::yield_now().await;
    }
}

async fn handle(
    mut stream: TcpStream,
    daemon: &Arc<Daemon>,
    registry: &Arc<Registry>,
    ticket: &Ticket,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    ticket.set_idle(true);
    let head = loop {
        if let Some(end) = http::head_end(&buf) {
            break Ok(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            break Err(http::TOO_LARGE);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break Err(http::BAD_REQUEST);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    ticket.set_idle(false);
    let reply = match head.and_then(http::parse) {
        Err(status) => http::error(status),
        Ok(req) => match req.route {
            Route::Index => http::response(
                Status(200, "OK"),
                "text/plain; charset=utf-8",
                INDEX,
                req.head_only,
            ),
            Route::Metrics => {
                // Off the runtime's thread, which serves the control plane.
                let (daemon, registry) = (Arc::clone(daemon), Arc::clone(registry));
                let body = tokio::task::spawn_blocking(move || {
                    let mut families = registry.gather();
                    families.extend(metrics::families(
                        &daemon.snapshot(),
                        &daemon.firewall(),
                        &daemon.reloads(),
                    ));
                    metrics::encode(&families)
                })
                .await
                .unwrap_or_else(|e| format!("# metrics failed: {e}\n"));
                http::response(
                    Status(200, "OK"),
                    "text/plain; version=0.0.4; charset=utf-8",
                    &body,
                    req.head_only,
                )
            }
        },
    };
    stream.write_all(&reply).await?;
    stream.shutdown().await?;
    ticket.set_idle(true);
    // Read what the client may still send until it closes (bounded by the caller's
    // deadline): closing with unread data would reset the connection and could destroy the
    // reply before the client reads it.
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < (64 << 10) {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}
