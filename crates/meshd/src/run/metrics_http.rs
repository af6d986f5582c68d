//! The metrics endpoint (`GET /metrics` on `interface.metrics`, loopback by default). Each
//! connection gets one response and is closed; a slow or malformed client gets an error or a
//! timeout, and a bounded number of them at once, so none can stall the daemon.

use super::view::View;
use crate::api::http::{self, Route, Status, MAX_HEAD};
use crate::api::metrics;
use anyhow::{Context, Result};
use prometheus::process_collector::ProcessCollector;
use prometheus::Registry;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// A client must send its request and take the reply within this.
const DEADLINE: Duration = Duration::from_secs(5);

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
        socket.listen(64)?;
        TcpListener::from_std(socket.into())
    };
    listen().with_context(|| format!("cannot listen for metrics on {addr} (interface.metrics)"))
}

pub(crate) async fn serve(listener: TcpListener, view: Arc<View>) -> Result<()> {
    let registry = Registry::new();
    registry.register(Box::new(ProcessCollector::for_self()))?;
    let registry = Arc::new(registry);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let (view, registry) = (Arc::clone(&view), Arc::clone(&registry));
        conns.spawn(async move {
            let _ = tokio::time::timeout(DEADLINE, handle(stream, &view, &registry)).await;
            drop(slot);
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    view: &Arc<View>,
    registry: &Arc<Registry>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
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
                let (view, registry) = (Arc::clone(view), Arc::clone(registry));
                let body = tokio::task::spawn_blocking(move || {
                    let mut families = registry.gather();
                    families.extend(metrics::families(
                        &view.snapshot(),
                        &view.firewall(),
                        &view.reloads(),
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
