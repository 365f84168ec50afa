//! The accept loop: serves the app on a listener with the connection-level bounds of
//! `[http]`, using hyper-util's connection builder (HTTP/1.1 and HTTP/2) rather than
//! `axum::serve`, which exposes none of them.
//!
//! - **Connections**: at most `max_connections` are served at once (a semaphore permit per
//!   connection, taken before `accept`), so further clients wait in the kernel's backlog.
//! - **Request heads**: hyper closes a connection whose request line and headers do not arrive
//!   within `header_read_timeout_ms`; its timer starts whenever the connection waits for a
//!   request, so the same bound closes idle kept-alive connections.
//! - **HTTP/2**: pings a quiet connection and closes it when the peer stops answering.
//!
//! Every request carries the peer's address (`ConnectInfo<SocketAddr>`) for the rate limit.
//! Shutdown stops accepting, lets in-flight requests finish (at most
//! [`SHUTDOWN_GRACE`] past the request timeout), then drops what is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::HttpConfig;

/// How long to wait after a failed `accept` (e.g. out of file descriptors) before trying
/// again, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How often a quiet HTTP/2 connection is pinged, and how long the answer may take.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once.
const HTTP2_MAX_STREAMS: u32 = 100;
/// How long shutdown waits for in-flight requests beyond the request timeout.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &HttpConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE)
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit?,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = Duration::from_millis(config.request_timeout_ms) + SHUTDOWN_GRACE;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the shutdown grace period; dropping them"
        );
    }
    Ok(())
}
