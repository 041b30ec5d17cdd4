//! `admin`: the HTTP side doors of a server. The AdminServer (`admin.*`: ZooKeeper's JSON
//! commands under `admin.commandURL`, plus zkw's `recipes` and `digest`) and the Prometheus
//! endpoint (`metricsProvider.*`). Both read the facts `server::facts` gathers, the same the
//! four-letter words print; neither knows consensus internals. A port that cannot be bound is
//! logged and skipped: clients are still served, as ZooKeeper does. Both bind the host their
//! keys name (`admin.serverAddress`, `metricsProvider.httpHost`) and both limit their
//! connections in number and idle time (`listener`).

pub mod commands;
mod listener;
pub mod metrics;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::Context;
use listener::{LimitedListener, Peer};

/// Idle time of a metrics endpoint connection: Jetty's default, which ZooKeeper's Prometheus
/// endpoint keeps (it has no key for it).
pub const METRICS_IDLE_TIMEOUT_MS: u64 = 30_000;

/// Starts the admin and metrics servers the configuration enables; they stop when `stop`
/// turns true (the caller may also abort the returned tasks).
pub fn spawn(context: &Context, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let config = &context.shared.config;
    let mut tasks = Vec::new();
    if config.admin.enable_server {
        let address = (
            config.admin.server_address.clone(),
            config.admin.server_port,
        );
        let router = commands::router(context.clone(), &config.admin.command_url);
        tasks.push(tokio::spawn(serve_http(
            ("admin server", config.admin.idle_timeout_ms),
            address,
            router,
            stop.clone(),
        )));
    }
    if config.metrics.provider_class_name.is_some() {
        let address = (config.metrics.http_host.clone(), config.metrics.http_port);
        let router = metrics::router(context.clone());
        tasks.push(tokio::spawn(serve_http(
            ("metrics endpoint", METRICS_IDLE_TIMEOUT_MS),
            address,
            router,
            stop.clone(),
        )));
    }
    tasks
}

/// Binds `address` and serves `router` until `stop`, closing connections idle for `idle_ms`;
/// logs (and returns) when it cannot bind.
async fn serve_http(
    (what, idle_ms): (&'static str, u64),
    address: (String, u16),
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let (host, port) = address;
    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%host, port, %error, "cannot start the {what}; clients are still served");
            return;
        }
    };
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(address = ?local, "{what} listening");
    let shutdown = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    };
    let listener = LimitedListener::new(listener, what, idle_ms);
    let service = router.into_make_service_with_connect_info::<Peer>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%error, "{what} stopped");
    }
}
