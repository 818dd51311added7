//! Runs the app: bind, serve, and on SIGTERM/SIGINT stop accepting, drain in-flight requests
//! for up to the grace period, then return so the caller can close pools and flush telemetry.

use std::{io, net::SocketAddr, time::Duration};

use poem::{
    Endpoint, Server,
    listener::{Acceptor, Listener, TcpListener},
};

/// A bound listener, so the caller learns the real port before serving.
pub struct Bound {
    acceptor: poem::listener::TcpAcceptor,
    /// The local address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
}

/// Binds `addr`; fails with the OS error (port in use, permission).
pub async fn bind(addr: SocketAddr) -> io::Result<Bound> {
    let acceptor = TcpListener::bind(addr).into_acceptor().await?;
    let local_addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(addr);
    Ok(Bound { acceptor, local_addr })
}

/// Serves until `shutdown` completes, then drains for up to `grace`.
pub async fn serve(
    bound: Bound,
    app: impl Endpoint + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    Server::new_with_acceptor(bound.acceptor).run_with_graceful_shutdown(app, shutdown, Some(grace)).await
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received; draining in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; draining in-flight requests"),
    }
}
