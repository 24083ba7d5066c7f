//! The mTLS listener: a TLS handshake that requires a client certificate
//! chaining to the fleet CA (rustls verifies chain, validity and usage),
//! then the same connection handling as the plain listener, with the
//! certificate as the device's identity. Failed handshakes are refused
//! with rustls's reason, logged and counted (`refused.tls`).

use super::connection::{self, Transport};
use super::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let stop = shutdown.clone();
    super::accept_loop(listener, shutdown, move |stream, peer| {
        let (acceptor, shared, stop) = (acceptor.clone(), shared.clone(), stop.clone());
        async move {
            let timeout = Duration::from_secs(shared.config.connect_timeout_s);
            let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    connection::refuse(&shared, &peer, "tls", &format!("TLS handshake: {e}"));
                    return;
                }
                Err(_) => {
                    connection::refuse(
                        &shared,
                        &peer,
                        "tls",
                        "no TLS handshake within the connect timeout",
                    );
                    return;
                }
            };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.as_ref().to_vec());
            let Some(cert_der) = cert else {
                connection::refuse(&shared, &peer, "tls", "no client certificate");
                return;
            };
            connection::handle(shared, tls, peer, Transport::Tls { cert_der }, stop).await
        }
    })
    .await
}
