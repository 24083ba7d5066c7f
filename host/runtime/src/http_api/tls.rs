//! The HTTPS listener for devices: a TLS handshake that requires a client
//! certificate chaining to the fleet CA (the MQTT mTLS listener's
//! configuration), then HTTP/1.1 on the connection, each request answered
//! as the certificate's thing ([`Api::respond`]). Failed handshakes are
//! logged and counted (`refused.https`).

use super::Api;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve HTTPS on `listener` until `shutdown` changes.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    api: Arc<Api>,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let stop = shutdown.clone();
    crate::listener::accept_loop(listener, shutdown, move |stream, peer| {
        connection(acceptor.clone(), stream, peer, api.clone(), stop.clone())
    })
    .await
}

async fn connection(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    mut shutdown: watch::Receiver<bool>,
) {
    let refuse = |why: String| {
        api.metrics.count("refused.https", 1);
        tracing::warn!(%peer, reason = %why, "HTTPS connection refused");
    };
    let (tls, cert) =
        match crate::listener::tls::handshake(&acceptor, stream, HANDSHAKE_TIMEOUT).await {
            Ok((tls, cert)) => (tls, Arc::<[u8]>::from(cert)),
            Err(why) => return refuse(why),
        };
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (api, cert) = (api.clone(), cert.clone());
            async move {
                let request = request.map(axum::body::Body::new);
                Ok::<_, std::convert::Infallible>(api.respond(peer, Some(&cert), request).await)
            }
        });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}
