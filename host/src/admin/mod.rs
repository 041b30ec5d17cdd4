//! `admin`: the HTTP side doors of a server. The AdminServer (`admin.*`: ZooKeeper's JSON
//! commands under `admin.commandURL`, plus zkw's `recipes` and `digest`) and the Prometheus
//! endpoint (`metricsProvider.*`). Both read the facts `server::facts` gathers, the same the
//! four-letter words print; neither knows consensus internals. A port that cannot be bound is
//! logged and skipped: clients are still served, as ZooKeeper does.

pub mod commands;
pub mod metrics;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::Context;

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
            "admin server",
            address,
            router,
            stop.clone(),
        )));
    }
    if config.metrics.provider_class_name.is_some() {
        let address = (config.metrics.http_host.clone(), config.metrics.http_port);
        let router = metrics::router(context.clone());
        tasks.push(tokio::spawn(serve_http(
            "metrics endpoint",
            address,
            router,
            stop.clone(),
        )));
    }
    tasks
}

/// Binds `address` and serves `router` until `stop`; logs (and returns) when it cannot bind.
async fn serve_http(
    what: &'static str,
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
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%error, "{what} stopped");
    }
}
