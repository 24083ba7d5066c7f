//! MQTT over WebSockets: the listener browsers and dashboards connect to
//! (MQTT.js, paho's `websockets` transport), as EMQX and Mosquitto serve it.
//!
//! The HTTP upgrade is answered with the `mqtt` subprotocol (MQTT 3.1.1 and
//! 5 name it so; `mqttv3.1` is accepted too) on any path (clients default
//! to `/mqtt`). After it, each binary WebSocket frame carries MQTT bytes,
//! which [`WsIo`] turns back into a byte stream, so the connection is
//! handled exactly as a plain TCP one: same packets, policies, presence
//! events and back-pressure. Like the plain listener it has no identity
//! beyond the client id; put it behind a TLS-terminating proxy to expose it.

use super::{accept_loop, connection, Shared};
use futures_util::{Sink, Stream};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Subprotocols a client may ask for, in order of preference.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Serve MQTT over WebSockets until `shutdown` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let stop = shutdown.clone();
    accept_loop(listener, shutdown, move |stream, peer| {
        let (shared, stop) = (shared.clone(), stop.clone());
        async move {
            match upgrade(stream).await {
                Ok(ws) => {
                    let io = WsIo::new(ws);
                    connection::handle(shared, io, peer, connection::Transport::Tcp, stop).await
                }
                Err(why) => connection::refuse(&shared, &peer, "websocket", &why),
            }
        }
    })
    .await
}

/// The WebSocket handshake, choosing the MQTT subprotocol.
async fn upgrade(stream: TcpStream) -> Result<WebSocketStream<TcpStream>, String> {
    // The callback's type is tungstenite's, error response and all.
    #[allow(clippy::result_large_err)]
    let choose = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        if let Some(chosen) = SUBPROTOCOLS.iter().find(|p| offered.contains(p)) {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
        }
        Ok(response)
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, choose);
    match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await {
        Ok(Ok(ws)) => Ok(ws),
        Ok(Err(e)) => Err(format!("websocket handshake failed: {e}")),
        Err(_) => Err("no websocket handshake within 10 s".into()),
    }
}

/// A WebSocket as the byte stream MQTT expects: binary frames read in
/// order, each write sent as one binary frame.
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last frame.
    pending: bytes::Bytes,
}

impl<S> WsIo<S> {
    pub fn new(ws: WebSocketStream<S>) -> WsIo<S> {
        WsIo {
            ws,
            pending: bytes::Bytes::new(),
        }
    }
}

fn io_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                // Pings are answered by the WebSocket layer; nothing to read.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT over WebSockets uses binary frames, not text",
                    )))
                }
                // Closed: end of stream.
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
        let frame = Message::Binary(bytes::Bytes::copy_from_slice(buf));
        Pin::new(&mut self.ws).start_send(frame).map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(io_error)
    }
}
