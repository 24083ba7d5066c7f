//! The mTLS listener: a TLS handshake that requires a client certificate
//! chaining to the fleet CA (rustls verifies chain, validity and usage),
//! then the same connection handling as the plain listener, with the
//! certificate as the device's identity. Failed handshakes are refused
//! with rustls's reason, logged and counted (`refused.tls`).

use super::connection::{self, Transport};
use super::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The TLS handshake of a client that must present a certificate, within
/// `timeout`: the stream and the client's own certificate (DER), or why
/// the connection is refused. The MQTT and HTTPS listeners share it.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, Vec<u8>), String> {
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(format!("TLS handshake: {e}")),
        Err(_) => return Err(format!("no TLS handshake within {} s", timeout.as_secs())),
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| "no client certificate".to_string())?;
    Ok((tls, cert))
}

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
            let (tls, cert_der) = match handshake(&acceptor, stream, timeout).await {
                Ok(done) => done,
                Err(why) => return connection::refuse(&shared, &peer, "tls", &why),
            };
            connection::handle(shared, tls, peer, Transport::Tls { cert_der }, stop).await
        }
    })
    .await
}
