//! One device connection: CONNECT handling, then a loop that moves packets
//! between the socket and the device's router link, and hands every PUBLISH
//! to the engine, stamped with the moment it was read.

use super::presence::DisconnectReason;
use super::{policy, Shared};
use crate::engine::Ingest;
use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{ConnAck, ConnectReturnCode, Packet, Protocol};
use rumqttd::Notification;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// Client ids of the host's own router links.
pub const INTERNAL_PREFIX: &str = "weir.internal.";

/// Rewrite a device packet's topics to their router names.
fn packet_to_router(packet: Packet) -> Packet {
    match packet {
        Packet::Publish(mut p, props) => {
            if p.topic.first() == Some(&b'$') {
                if let Ok(t) = std::str::from_utf8(&p.topic) {
                    p.topic = bytes::Bytes::from(crate::broker::to_router(t).into_owned());
                }
            }
            Packet::Publish(p, props)
        }
        Packet::Subscribe(mut s, props) => {
            for f in &mut s.filters {
                f.path = crate::broker::to_router(&f.path).into_owned();
            }
            Packet::Subscribe(s, props)
        }
        Packet::Unsubscribe(mut u, props) => {
            for f in &mut u.filters {
                *f = crate::broker::to_router(f).into_owned();
            }
            Packet::Unsubscribe(u, props)
        }
        other => other,
    }
}

/// Rewrite a router packet's topic to the device's name for it.
fn packet_from_router(packet: Packet) -> Packet {
    match packet {
        Packet::Publish(mut p, props) => {
            p.topic = crate::broker::from_router(&p.topic);
            Packet::Publish(p, props)
        }
        other => other,
    }
}

/// Read until one whole packet is parsed, or fail.
async fn read_packet(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Packet, String> {
    loop {
        match V4.read_mut(buf, max) {
            Ok(p) => return Ok(p),
            Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        match stream.read_buf(buf).await {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn write_packets(
    stream: &mut TcpStream,
    out: &mut BytesMut,
    packets: impl IntoIterator<Item = Packet>,
) -> std::io::Result<()> {
    out.clear();
    for p in packets {
        V4.write(p, out)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    stream.write_all(out).await
}

pub async fn handle(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let max = shared.config.max_packet_size;
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::with_capacity(4096);

    // CONNECT, within the timeout.
    let timeout = Duration::from_secs(shared.config.connect_timeout_s);
    let first = tokio::time::timeout(timeout, read_packet(&mut stream, &mut buf, max)).await;
    let (connect, will) = match first {
        Ok(Ok(Packet::Connect(connect, _props, will, _will_props, _login))) => (connect, will),
        Ok(Ok(other)) => {
            refuse(
                &shared,
                &peer,
                &format!("first packet was not CONNECT: {other:?}"),
            );
            return;
        }
        Ok(Err(e)) => {
            refuse(&shared, &peer, &format!("bad CONNECT: {e}"));
            return;
        }
        Err(_) => {
            refuse(&shared, &peer, "no CONNECT within the connect timeout");
            return;
        }
    };
    let client_id = if connect.client_id.is_empty() {
        if !connect.clean_session {
            let nack = Packet::ConnAck(
                ConnAck {
                    session_present: false,
                    code: ConnectReturnCode::ClientIdentifierNotValid,
                },
                None,
            );
            let _ = write_packets(&mut stream, &mut out, [nack]).await;
            refuse(&shared, &peer, "empty client id with a persistent session");
            return;
        }
        format!("weir-{}", uuid::Uuid::new_v4().simple())
    } else {
        connect.client_id.clone()
    };

    // One connection per client id: a newer one replaces the older.
    let (kick_tx, mut kick_rx) = oneshot::channel::<()>();
    // Dropped when this connection has left the router.
    let (gone_tx, gone_rx) = oneshot::channel::<()>();
    let session = uuid::Uuid::new_v4().to_string();
    if let Some(previous) = shared.register(&client_id, &session, kick_tx, gone_rx) {
        previous.close().await;
    }

    let broker = shared.broker.clone();
    if client_id.starts_with(INTERNAL_PREFIX) {
        refuse(
            &shared,
            &peer,
            "client ids starting with weir.internal. are reserved",
        );
        return;
    }
    let (cid, clean) = (
        crate::broker::router_client_id(&client_id),
        connect.clean_session,
    );
    let link = tokio::task::spawn_blocking(move || broker.link(&cid, clean)).await;
    let (mut link_tx, mut link_rx, connack) = match link {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            tracing::error!(client_id, error = %e, "broker refused the connection");
            let nack = Packet::ConnAck(
                ConnAck {
                    session_present: false,
                    code: ConnectReturnCode::ServerUnavailable,
                },
                None,
            );
            let _ = write_packets(&mut stream, &mut out, [nack]).await;
            shared.unregister(&client_id, &session);
            shared.metrics.connections_refused.fetch_add(1, Relaxed);
            return;
        }
        Err(_) => {
            shared.unregister(&client_id, &session);
            return;
        }
    };
    let connack: Option<Packet> = connack.into();
    if let Some(packet) = connack {
        if write_packets(&mut stream, &mut out, [packet])
            .await
            .is_err()
        {
            shared.unregister(&client_id, &session);
            return;
        }
    }
    shared.metrics.connects.fetch_add(1, Relaxed);
    shared.metrics.connections.fetch_add(1, Relaxed);
    tracing::debug!(client_id, %peer, "connected");
    shared
        .presence
        .connected(&client_id, &session, &peer.ip().to_string())
        .await;
    let client: Arc<str> = Arc::from(client_id.as_str());

    // Keep-alive: 1.5 × the client's interval without a packet ends it.
    let keep_alive =
        (connect.keep_alive > 0).then(|| Duration::from_millis(connect.keep_alive as u64 * 1500));
    let mut deadline = keep_alive.map(|k| tokio::time::Instant::now() + k);
    // Packets that arrived in the same read as CONNECT (a client commonly
    // sends SUBSCRIBE right behind it, before the CONNACK) are handled at
    // once, not when the next bytes happen to arrive.
    let mut buffered = !buf.is_empty();

    let reason = 'conn: loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let leftover = std::mem::take(&mut buffered);
        tokio::select! {
            read = async {
                if leftover {
                    Ok(1)
                } else {
                    stream.read_buf(&mut buf).await
                }
            } => {
                match read {
                    Ok(0) => break DisconnectReason::ConnectionLost,
                    Err(_) => break DisconnectReason::ConnectionLost,
                    Ok(_) => {}
                }
                let received_at = crate::clock::now_ms();
                if let Some(k) = keep_alive {
                    deadline = Some(tokio::time::Instant::now() + k);
                }
                let mut to_router: Vec<Packet> = Vec::new();
                loop {
                    let packet = match V4.read_mut(&mut buf, max) {
                        Ok(p) => p,
                        Err(rumqttd::protocol::Error::InsufficientBytes(_)) => break,
                        Err(e) => {
                            shared.metrics.protocol_errors.fetch_add(1, Relaxed);
                            tracing::warn!(client_id = %client, error = %e, "protocol error; closing");
                            break 'conn DisconnectReason::ClientError;
                        }
                    };
                    match packet {
                        Packet::Publish(publish, props) => {
                            let Ok(topic) = std::str::from_utf8(&publish.topic) else {
                                shared.metrics.protocol_errors.fetch_add(1, Relaxed);
                                break 'conn DisconnectReason::ClientError;
                            };
                            if let Some(why) = policy::refuse_publish(topic) {
                                shared.metrics.policy_violations.fetch_add(1, Relaxed);
                                tracing::warn!(client_id = %client, topic, reason = why, "publish refused; disconnecting");
                                break 'conn DisconnectReason::ForbiddenAccess;
                            }
                            shared.metrics.messages_received.fetch_add(1, Relaxed);
                            let ingest = Ingest {
                                topic: topic.to_string(),
                                payload: publish.payload.clone(),
                                client_id: client.clone(),
                                received_at,
                                hops: 0,
                            };
                            // Waits while the engine's queue is full: this is
                            // where back-pressure stops reading the socket.
                            if !shared.engine.send(ingest).await {
                                break 'conn DisconnectReason::ServerInitiated;
                            }
                            to_router.push(packet_to_router(Packet::Publish(publish, props)));
                        }
                        Packet::Disconnect(..) => {
                            if !to_router.is_empty() && flush_router(&mut link_tx, &mut to_router).await.is_err() {
                                break 'conn DisconnectReason::ServerError;
                            }
                            break 'conn DisconnectReason::ClientInitiated;
                        }
                        Packet::Connect(..) => {
                            shared.metrics.protocol_errors.fetch_add(1, Relaxed);
                            break 'conn DisconnectReason::ClientError;
                        }
                        other => to_router.push(packet_to_router(other)),
                    }
                }
                if !to_router.is_empty() && flush_router(&mut link_tx, &mut to_router).await.is_err() {
                    break DisconnectReason::ServerError;
                }
            }
            notification = link_rx.next() => {
                let mut packets = Vec::new();
                let mut next = notification;
                let mut unscheduled = false;
                loop {
                    match next {
                        Ok(Some(Notification::Unschedule)) => unscheduled = true,
                        Ok(Some(Notification::Disconnect(..))) => break 'conn DisconnectReason::ServerInitiated,
                        Ok(Some(n)) => {
                            let p: Option<Packet> = n.into();
                            packets.extend(p.map(packet_from_router));
                        }
                        Ok(None) => break,
                        Err(_) => break 'conn DisconnectReason::DuplicateClientId,
                    }
                    // Drain what is already buffered without waiting.
                    match tokio::time::timeout(Duration::ZERO, link_rx.next()).await {
                        Ok(n) => next = n,
                        Err(_) => break,
                    }
                }
                if !packets.is_empty() && write_packets(&mut stream, &mut out, packets).await.is_err() {
                    break DisconnectReason::ConnectionLost;
                }
                if unscheduled && link_rx.wake().await.is_err() {
                    break DisconnectReason::ServerError;
                }
            }
            _ = sleep => break DisconnectReason::KeepAliveTimeout,
            _ = &mut kick_rx => break DisconnectReason::DuplicateClientId,
            _ = shutdown.changed() => break DisconnectReason::ServerInitiated,
        }
    };

    let _ = stream.shutdown().await;
    // Tell the router this link is gone (it keeps a persistent session's
    // state); the will, if any, is the host's to publish below.
    let goodbye = Packet::Disconnect(
        rumqttd::protocol::Disconnect {
            reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
        },
        None,
    );
    let _ = link_tx.send(goodbye).await;
    drop(link_tx);
    drop(link_rx);
    drop(gone_tx);
    shared.unregister(&client_id, &session);
    shared.metrics.disconnects.fetch_add(1, Relaxed);
    shared.metrics.connections.fetch_sub(1, Relaxed);
    tracing::debug!(client_id, reason = reason.as_str(), "disconnected");
    if reason != DisconnectReason::ClientInitiated {
        if let Some(will) = will {
            if let Ok(topic) = std::str::from_utf8(&will.topic) {
                if policy::refuse_publish(topic).is_none() {
                    shared
                        .presence
                        .publish_raw(topic.to_string(), will.message.clone());
                    shared
                        .engine
                        .send(Ingest {
                            topic: topic.to_string(),
                            payload: will.message.clone(),
                            client_id: client.clone(),
                            received_at: crate::clock::now_ms(),
                            hops: 0,
                        })
                        .await;
                }
            }
        }
    }
    shared
        .presence
        .disconnected(&client_id, &session, reason)
        .await;
}

/// Hand parsed device packets to the router: all but the last go straight
/// into the link's buffer, the last one wakes the router once for all.
async fn flush_router(
    link_tx: &mut rumqttd::local::LinkTx,
    packets: &mut Vec<Packet>,
) -> Result<(), String> {
    let Some(last) = packets.pop() else {
        return Ok(());
    };
    {
        let mut buffer = link_tx.buffer();
        buffer.extend(packets.drain(..));
    }
    link_tx
        .send(last)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn refuse(shared: &Shared, peer: &SocketAddr, why: &str) {
    shared.metrics.connections_refused.fetch_add(1, Relaxed);
    tracing::warn!(%peer, reason = why, "connection refused");
}
