//! The metrics endpoint (`GET /metrics` on `interface.metrics`, loopback by default). Each
//! connection gets one response and is closed; a slow or malformed client gets an error or a
//! timeout, and a bounded number of them at once, so none can stall the daemon.

use super::view::View;
use crate::api::http::{self, Route, Status, MAX_HEAD};
use crate::api::metrics;
use anyhow::{Context, Result};
use prometheus::process_collector::ProcessCollector;
use prometheus::Registry;
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

pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr} (interface.metrics)"))
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

async fn handle(mut stream: TcpStream, view: &View, registry: &Registry) -> std::io::Result<()> {
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
                let mut families = registry.gather();
                families.extend(metrics::families(&view.snapshot(), &view.firewall()));
                http::response(
                    Status(200, "OK"),
                    "text/plain; version=0.0.4; charset=utf-8",
                    &metrics::encode(&families),
                    req.head_only,
                )
            }
        },
    };
    stream.write_all(&reply).await?;
    stream.shutdown().await
}
