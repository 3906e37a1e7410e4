//! Flotte's HTTPS front: the device protocols and the admin API over axum and
//! rustls. Handlers are thin: they parse, call storage or a domain rule, and
//! answer; nothing here decides policy on its own.

pub mod api;
mod apple;
pub mod bootstrap;
mod error;
pub mod local_auth;
mod metrics;
mod signin;
mod state;
mod tls;
pub mod web;
mod windows;

pub use bootstrap::{Prepared, ProfileSigner, prepare};
pub use error::ApiError;
pub use state::AppState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum_server::Handle;
use std::net::SocketAddr;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Every route of the server, with the cross-cutting layers applied.
pub fn router(state: AppState) -> Router {
    let limits = &state.settings.http;
    let body_limit = limits.body_limit_bytes;
    let timeout = Duration::from_secs(limits.request_timeout_secs);
    api::routes(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        // Both layers: DefaultBodyLimit for extractors, RequestBodyLimitLayer for
        // bodies without a Content-Length (chunked), which would otherwise be read.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
}

/// A bound, not yet running HTTPS server.
pub struct Application {
    listener: std::net::TcpListener,
    state: AppState,
    handle: Handle<SocketAddr>,
    tls: axum_server::tls_rustls::RustlsConfig,
}

impl Application {
    /// Bind the listener (port 0 picks a free port) and prepare TLS.
    pub fn build(state: AppState, prepared: &Prepared) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(state.settings.listen)?;
        listener.set_nonblocking(true)?;
        let tls = tls::server_config(prepared)?;
        Ok(Self {
            listener,
            state,
            handle: Handle::new(),
            tls: axum_server::tls_rustls::RustlsConfig::from_config(tls),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` resolves, then let in-flight requests finish
    /// within the configured grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.settings.http.shutdown_grace_secs);
        let handle = self.handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down the HTTPS server");
            handle.graceful_shutdown(Some(grace));
        });
        let app = router(self.state);
        axum_server::from_tcp_rustls(self.listener, self.tls)?
            .handle(self.handle)
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await?;
        Ok(())
    }
}
