//! One device connection, on either listener: CONNECT (MQTT 3.1.1 or 5),
//! identity and policy for TLS clients, session take-over, then a loop that
//! moves packets between the socket and the device's router link and hands
//! every PUBLISH to the engine, stamped with the moment it was read.

use super::basic_ingest;
use super::codec::{Codec, Detected};
use super::packets::{self, Meta};
use super::presence::DisconnectReason;
use super::session::{Queued, Session};
use super::{policy, Shared};
use crate::engine::{Ingest, Publisher};
use crate::identity::{provisioning, Principal};
use crate::jobs;
use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubAckReason, SubAck, SubscribeReasonCode,
};
use rumqttd::Notification;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

/// Client ids of the host's own router links.
pub const INTERNAL_PREFIX: &str = "weir.internal.";

/// Packet ids the host uses for messages it sends itself (a session's
/// queue); the router's own are 1–100, so the two never meet.
const HOST_PKIDS: std::ops::RangeInclusive<u16> = 1_000..=65_000;

/// How a connection reached the host.
pub enum Transport {
    /// The plain listener: no identity beyond the client id.
    Tcp,
    /// The mTLS listener: the verified client certificate (DER).
    Tls { cert_der: Vec<u8> },
}

/// Rewrite a device packet's topics to their router names.
fn packet_to_router(packet: Packet) -> Packet {
    match packet {
        Packet::Publish(mut p, props) => {
            if p.topic.first() == Some(&b'$') {
                if let Ok(t) = std::str::from_utf8(&p.topic) {
                    p.topic = Bytes::from(crate::broker::to_router(t).into_owned());
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

/// A device's QoS 1 PUBLISH is acknowledged by the host, now that the
/// engine has it, and goes on to the router at QoS 0: rumqttd forwards a
/// message at each subscription's QoS whatever it was published with, so
/// subscribers see no difference, and the router keeps no acknowledgement
/// to send back. Left to the router, the PUBACK cost a second wake-up of
/// the connection (the router's notice) for every reading. QoS 0 and 2 go
/// to the router as they came.
fn host_acked(
    publish: rumqttd::protocol::Publish,
    meta: packets::Meta,
    to_device: &mut Vec<Packet>,
) -> rumqttd::protocol::Publish {
    if meta.qos != 1 {
        return publish;
    }
    to_device.extend(packets::ack(meta));
    rumqttd::protocol::Publish::new(publish.topic, publish.payload, publish.retain)
}

/// Read the CONNECT: detect the protocol level, then parse the packet.
async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(Codec, Packet), String> {
    loop {
        match Codec::detect(buf) {
            Detected::Codec(codec) => loop {
                match codec.read(buf, max) {
                    Ok(p) => return Ok((codec, p)),
                    Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {}
                    Err(e) => return Err(format!("{e:?}")),
                }
                match stream.read_buf(buf).await {
                    Ok(0) => return Err("connection closed in CONNECT".into()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            },
            Detected::Unsupported(why) => return Err(why),
            Detected::NeedMore => {}
        }
        match stream.read_buf(buf).await {
            Ok(0) => return Err("connection closed before CONNECT".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn write_packets<S: AsyncWrite + Unpin>(
    stream: &mut S,
    codec: Codec,
    out: &mut BytesMut,
    packets: impl IntoIterator<Item = Packet>,
) -> std::io::Result<()> {
    out.clear();
    for p in packets {
        codec
            .write(p, out)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    stream.write_all(out).await?;
    stream.flush().await
}

fn connack(code: ConnectReturnCode, session_present: bool) -> Packet {
    Packet::ConnAck(
        ConnAck {
            session_present,
            code,
        },
        None,
    )
}

/// A SUBSCRIBE some of whose filters the policy refused: the router
/// answers for the rest, and the SUBACK is completed here.
struct PartialSub {
    /// Position in the device's SUBSCRIBE of each refused filter.
    refused: Vec<usize>,
    total: usize,
}

/// Per-connection delivery state for QoS 1 messages to the device.
#[derive(Default)]
struct Outbound {
    /// Router-forwarded QoS 1 messages written but not yet acknowledged.
    router: VecDeque<(u16, Queued)>,
    /// Host-sent (session queue) messages written but not yet acknowledged.
    host: VecDeque<(u16, Queued)>,
    next_host_pkid: u16,
}

impl Outbound {
    fn host_pkid(&mut self) -> u16 {
        if !HOST_PKIDS.contains(&self.next_host_pkid) {
            self.next_host_pkid = *HOST_PKIDS.start();
        }
        let p = self.next_host_pkid;
        self.next_host_pkid += 1;
        p
    }

    /// A queued message as a packet with a host packet id, now in flight.
    fn send(&mut self, mut q: Queued) -> Packet {
        let pkid = self.host_pkid();
        let meta = Meta {
            qos: 1,
            pkid,
            dup: q.sent,
        };
        let publish = packets::build(&q.publish.topic, &q.publish.payload, q.publish.retain, meta);
        let packet = Packet::Publish(publish, q.properties.clone());
        q.sent = true;
        self.host.push_back((pkid, q));
        packet
    }
}

pub async fn handle<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: SocketAddr,
    transport: Transport,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let max = shared.config.max_packet_size;
    let mut buf = BytesMut::with_capacity(1024);
    let mut out = BytesMut::with_capacity(1024);

    // CONNECT, within the timeout.
    let timeout = Duration::from_secs(shared.config.connect_timeout_s);
    let first = tokio::time::timeout(timeout, read_connect(&mut stream, &mut buf, max)).await;
    let (codec, connect, props, will) = match first {
        Ok(Ok((codec, Packet::Connect(connect, props, will, _will_props, _login)))) => {
            (codec, connect, props, will)
        }
        Ok(Ok((_, other))) => {
            refuse(
                &shared,
                &peer,
                "bad_connect",
                &format!("first packet was not CONNECT: {other:?}"),
            );
            return;
        }
        Ok(Err(e)) => {
            refuse(&shared, &peer, "bad_connect", &format!("bad CONNECT: {e}"));
            return;
        }
        Err(_) => {
            refuse(
                &shared,
                &peer,
                "connect_timeout",
                "no CONNECT within the connect timeout",
            );
            return;
        }
    };
    // Persistence: 3.1.1 clean session off, or an MQTT 5 session expiry.
    let expiry_s = match codec {
        Codec::V4 => (!connect.clean_session).then_some(shared.config.session_expiry_s),
        Codec::V5 => props
            .as_ref()
            .and_then(|p| p.session_expiry_interval)
            .filter(|&s| s > 0)
            .map(|s| u64::from(s).min(shared.config.session_expiry_s)),
    };
    let resume = !connect.clean_session;
    let client_id = if connect.client_id.is_empty() {
        if expiry_s.is_some() || resume {
            let nack = connack(ConnectReturnCode::ClientIdentifierNotValid, false);
            let _ = write_packets(&mut stream, codec, &mut out, [nack]).await;
            refuse(
                &shared,
                &peer,
                "bad_client_id",
                "empty client id with a persistent session",
            );
            return;
        }
        format!("weir-{}", uuid::Uuid::new_v4().simple())
    } else {
        connect.client_id.clone()
    };
    if client_id.starts_with(INTERNAL_PREFIX) {
        let nack = connack(ConnectReturnCode::ClientIdentifierNotValid, false);
        let _ = write_packets(&mut stream, codec, &mut out, [nack]).await;
        refuse(
            &shared,
            &peer,
            "bad_client_id",
            "client ids starting with weir.internal. are reserved",
        );
        return;
    }

    // Who is this? (TLS only: the certificate is the identity.)
    let principal: Option<Principal> = match (&transport, &shared.identity) {
        (Transport::Tcp, _) => None,
        (Transport::Tls { cert_der }, Some(identity)) => {
            let (identity, der, cid) = (identity.clone(), cert_der.clone(), client_id.clone());
            match tokio::task::spawn_blocking(move || identity.authorize(&der, &cid)).await {
                Ok(Ok(p)) => Some(p),
                Ok(Err(refusal)) => {
                    let nack = connack(ConnectReturnCode::NotAuthorized, false);
                    let _ = write_packets(&mut stream, codec, &mut out, [nack]).await;
                    refuse(
                        &shared,
                        &peer,
                        refusal.kind,
                        &format!("client {client_id:?}: {}", refusal.reason),
                    );
                    return;
                }
                Err(_) => return,
            }
        }
        (Transport::Tls { .. }, None) => return,
    };
    let certificate_id = principal.as_ref().map(|p| p.certificate_id.clone());

    // One connection per client id: a newer one replaces the older (which
    // parks its session first, if it has one).
    let (kick_tx, mut kick_rx) = oneshot::channel::<DisconnectReason>();
    let (gone_tx, gone_rx) = oneshot::channel::<()>();
    let session_id = uuid::Uuid::new_v4().to_string();
    if let Some(previous) = shared.register(
        &client_id,
        &session_id,
        certificate_id.clone(),
        kick_tx,
        gone_rx,
    ) {
        previous.close().await;
    }

    // The router link: a parked session's, or a new one.
    let resumed = if resume {
        shared.sessions.take(&client_id).await
    } else {
        shared.sessions.discard(&client_id);
        None
    };
    let session_present = resumed.is_some();
    let (mut link_tx, mut link_rx, mut backlog, mut subscriptions) = match resumed {
        Some(s) => (s.link_tx, s.link_rx, s.queue, s.subscriptions),
        None => {
            let broker = shared.broker.clone();
            let cid = crate::broker::router_client_id(&client_id);
            match tokio::task::spawn_blocking(move || broker.link(&cid, true)).await {
                Ok(Ok((tx, rx, _router_connack))) => (tx, rx, VecDeque::new(), Vec::new()),
                Ok(Err(e)) => {
                    tracing::error!(client_id, error = %e, "broker refused the connection");
                    let nack = connack(ConnectReturnCode::ServerUnavailable, false);
                    let _ = write_packets(&mut stream, codec, &mut out, [nack]).await;
                    shared.unregister(&client_id, &session_id);
                    shared.metrics.connections_refused.fetch_add(1, Relaxed);
                    return;
                }
                Err(_) => {
                    shared.unregister(&client_id, &session_id);
                    return;
                }
            }
        }
    };

    // CONNACK, then what the session queued while the device was away.
    let mut outbound = Outbound::default();
    let mut first_packets = vec![connack(ConnectReturnCode::Success, session_present)];
    while let Some(q) = backlog.pop_front() {
        first_packets.push(outbound.send(q));
    }
    let replayed = first_packets.len() - 1;
    if write_packets(&mut stream, codec, &mut out, first_packets)
        .await
        .is_err()
    {
        // Never reached the device: the session (if any) stays whole
        // (finish_link puts what was "sent" back at the front).
        finish_link(
            &shared,
            &client_id,
            expiry_s,
            Session {
                link_tx,
                link_rx,
                queue: backlog,
                expiry: Duration::from_secs(expiry_s.unwrap_or(0)),
                subscriptions,
            },
            &mut outbound,
        )
        .await;
        shared.unregister(&client_id, &session_id);
        return;
    }
    shared.metrics.connects.fetch_add(1, Relaxed);
    shared.metrics.connections.fetch_add(1, Relaxed);
    tracing::debug!(client_id, %peer, ?codec, session_present, replayed, "connected");
    shared
        .presence
        .connected(
            &client_id,
            &session_id,
            &peer.ip().to_string(),
            certificate_id.as_deref(),
        )
        .await;
    let client: Arc<str> = Arc::from(client_id.as_str());
    let publisher = Publisher::device(&client_id, certificate_id.clone(), peer.ip().to_string());

    // Keep-alive: 1.5 × the client's interval without a packet ends it.
    let keep_alive =
        (connect.keep_alive > 0).then(|| Duration::from_millis(connect.keep_alive as u64 * 1500));
    let mut deadline = keep_alive.map(|k| tokio::time::Instant::now() + k);
    // Packets that arrived in the same read as CONNECT (a client commonly
    // sends SUBSCRIBE right behind it, before the CONNACK) are handled at
    // once, not when the next bytes happen to arrive.
    let mut buffered = !buf.is_empty();
    let mut partial_subs: HashMap<u16, PartialSub> = HashMap::new();

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
                let mut to_device: Vec<Packet> = Vec::new();
                loop {
                    let head = packets::peek_meta(&buf);
                    let packet = match codec.read(&mut buf, max) {
                        Ok(p) => p,
                        Err(rumqttd::protocol::Error::InsufficientBytes(_)) => break,
                        Err(e) => {
                            shared.metrics.protocol_errors.fetch_add(1, Relaxed);
                            tracing::warn!(client_id = %client, error = ?e, "protocol error; closing");
                            break 'conn DisconnectReason::ClientError;
                        }
                    };
                    match packet {
                        Packet::Publish(publish, props) => {
                            let meta = head.unwrap_or_else(|| packets::meta(&publish));
                            let Ok(topic) = std::str::from_utf8(&publish.topic) else {
                                shared.metrics.protocol_errors.fetch_add(1, Relaxed);
                                tracing::warn!(client_id = %client, "publish topic is not UTF-8; closing");
                                break 'conn DisconnectReason::ClientError;
                            };
                            let refusal = policy::refuse_publish(topic).or_else(|| {
                                principal
                                    .as_ref()
                                    .filter(|p| !p.policy.allows_publish(topic))
                                    .map(|_| "not allowed by the device's policy")
                            });
                            if let Some(why) = refusal {
                                shared.metrics.policy_violations.fetch_add(1, Relaxed);
                                shared.metrics.count("policy.publish_refused", 1);
                                if codec.is_v5() {
                                    tracing::warn!(client_id = %client, topic, reason = why, "publish refused");
                                    if meta.qos > 0 {
                                        to_device.push(Packet::PubAck(PubAck { pkid: meta.pkid, reason: PubAckReason::NotAuthorized }, None));
                                    }
                                    continue;
                                }
                                tracing::warn!(client_id = %client, topic, reason = why, "publish refused; disconnecting (MQTT 3.1.1)");
                                break 'conn DisconnectReason::ForbiddenAccess;
                            }
                            if topic.starts_with("$aws/") && provisioning::is_request(topic) {
                                if let (Some(p), Some(identity)) = (&principal, &shared.identity) {
                                    let (identity, p, cid, t, body) = (identity.clone(), p.clone(), client_id.clone(), topic.to_string(), publish.payload.clone());
                                    let outcome = tokio::task::spawn_blocking(move || identity.provision(&p, &cid, &t, &body)).await.unwrap_or_default();
                                    shared.metrics.count("provisioning.requests", 1);
                                    to_device.extend(packets::ack(meta));
                                    for (reply_topic, body) in outcome.replies {
                                        if subscriptions.iter().any(|f| weir_sql::topic::topic_matches(f, &reply_topic)) {
                                            to_device.push(packets::answer(reply_topic, body));
                                        }
                                    }
                                    if let Some((event_topic, doc)) = outcome.event {
                                        shared.presence.emit(event_topic, doc).await;
                                    }
                                    continue;
                                }
                            }
                            if topic.starts_with("$aws/things/") && jobs::device_api::is_request(topic) {
                                let (jobs, t, body) = (shared.jobs.clone(), topic.to_string(), publish.payload.clone());
                                let handled = tokio::task::spawn_blocking(move || jobs.handle(&t, &body, crate::clock::now_ms())).await.ok().flatten();
                                if let Some(handled) = handled {
                                    let (reply_topic, body) = handled.reply;
                                    shared.metrics.count("jobs.requests", 1);
                                    if reply_topic.ends_with("/rejected") {
                                        shared.metrics.count("jobs.rejected", 1);
                                    }
                                    to_device.extend(packets::ack(meta));
                                    // To the requester whether or not it subscribed,
                                    // and to no one else, as AWS's Jobs answers.
                                    to_device.push(packets::answer(reply_topic, body));
                                    for notice in handled.notices {
                                        shared.presence.emit(notice.topic, notice.doc).await;
                                    }
                                    continue;
                                }
                            }
                            shared.metrics.messages_received.fetch_add(1, Relaxed);
                            // Basic Ingest: to its rule only, with the topic
                            // after the prefix, and never to the broker.
                            let (rule_topic, basic_ingest) = match basic_ingest::split(topic) {
                                Some((rule, rest)) => (rest, Some(rule.into())),
                                None => (topic, None),
                            };
                            let to_broker = basic_ingest.is_none();
                            let ingest = Ingest {
                                topic: rule_topic.to_string(),
                                payload: publish.payload.clone(),
                                from: publisher.clone(),
                                properties: props.as_ref().and_then(packets::rule_properties),
                                basic_ingest,
                                received_at,
                                hops: 0,
                            };
                            // Waits while the engine's queue is full: this is
                            // where back-pressure stops reading the socket.
                            if !shared.engine.send(ingest).await {
                                break 'conn DisconnectReason::ServerInitiated;
                            }
                            if !to_broker {
                                shared.metrics.count("basic_ingest.messages", 1);
                                to_device.extend(packets::ack(meta));
                                continue;
                            }
                            if publish.retain {
                                if let Some(retained) = &shared.retained {
                                    retained.record(topic, &publish.payload, meta.qos, received_at);
                                }
                            }
                            to_router.push(packet_to_router(Packet::Publish(host_acked(publish, meta, &mut to_device), props)));
                        }
                        Packet::Subscribe(mut subscribe, props) => {
                            let total = subscribe.filters.len();
                            let mut refused = Vec::new();
                            let mut kept = Vec::with_capacity(total);
                            for (i, f) in subscribe.filters.drain(..).enumerate() {
                                // Basic Ingest topics never reach subscribers,
                                // so AWS refuses subscriptions to them.
                                if f.path.starts_with(basic_ingest::PREFIX) {
                                    shared.metrics.count("basic_ingest.subscribe_refused", 1);
                                    tracing::warn!(client_id = %client, filter = %f.path, "subscription refused: Basic Ingest topics ($aws/rules/…) cannot be subscribed to");
                                    refused.push(i);
                                    continue;
                                }
                                let allowed = principal.as_ref().is_none_or(|p| p.policy.allows_subscribe(&f.path));
                                if allowed {
                                    // QoS 0 and 1, as AWS IoT: a QoS 2
                                    // subscription is granted QoS 1.
                                    let mut f = f;
                                    if f.qos == rumqttd::protocol::QoS::ExactlyOnce {
                                        f.qos = rumqttd::protocol::QoS::AtLeastOnce;
                                    }
                                    kept.push(f);
                                } else {
                                    shared.metrics.policy_violations.fetch_add(1, Relaxed);
                                    shared.metrics.count("policy.subscribe_refused", 1);
                                    tracing::warn!(client_id = %client, filter = %f.path, "subscription refused by the device's policy");
                                    refused.push(i);
                                }
                            }
                            subscriptions.extend(kept.iter().map(|f| f.path.clone()));
                            if kept.is_empty() {
                                let code = refused_code(codec);
                                to_device.push(Packet::SubAck(SubAck { pkid: subscribe.pkid, return_codes: vec![code; total] }, None));
                                continue;
                            }
                            if !refused.is_empty() {
                                partial_subs.insert(subscribe.pkid, PartialSub { refused, total });
                            }
                            subscribe.filters = kept;
                            to_router.push(packet_to_router(Packet::Subscribe(subscribe, props)));
                        }
                        Packet::Unsubscribe(unsubscribe, props) => {
                            subscriptions.retain(|f| !unsubscribe.filters.contains(f));
                            to_router.push(packet_to_router(Packet::Unsubscribe(unsubscribe, props)));
                        }
                        Packet::PubAck(ack, props) => {
                            if let Some(i) = outbound.host.iter().position(|(p, _)| *p == ack.pkid) {
                                outbound.host.remove(i);
                            } else {
                                if let Some(i) = outbound.router.iter().position(|(p, _)| *p == ack.pkid) {
                                    outbound.router.remove(i);
                                }
                                to_router.push(Packet::PubAck(ack, props));
                            }
                        }
                        Packet::Disconnect(..) => {
                            if !to_router.is_empty() && flush_router(&mut link_tx, &mut to_router).await.is_err() {
                                break 'conn DisconnectReason::ServerError;
                            }
                            break 'conn DisconnectReason::ClientInitiated;
                        }
                        Packet::Connect(..) => {
                            shared.metrics.protocol_errors.fetch_add(1, Relaxed);
                            tracing::warn!(client_id = %client, "second CONNECT; closing");
                            break 'conn DisconnectReason::ClientError;
                        }
                        other => to_router.push(packet_to_router(other)),
                    }
                }
                if !to_device.is_empty() && write_packets(&mut stream, codec, &mut out, to_device).await.is_err() {
                    break DisconnectReason::ConnectionLost;
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
                        Ok(Some(Notification::Forward(forward))) => {
                            let mut publish = forward.publish;
                            publish.topic = crate::broker::from_router(&publish.topic);
                            let meta = packets::meta(&publish);
                            if meta.qos > 0 {
                                outbound.router.push_back((meta.pkid, Queued { publish: publish.clone(), properties: forward.properties.clone(), sent: true }));
                            }
                            packets.push(Packet::Publish(publish, forward.properties));
                        }
                        Ok(Some(n)) => {
                            let p: Option<Packet> = n.into();
                            if let Some(p) = p {
                                packets.push(complete_suback(p, &mut partial_subs, codec));
                            }
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
                if !packets.is_empty() && write_packets(&mut stream, codec, &mut out, packets).await.is_err() {
                    break DisconnectReason::ConnectionLost;
                }
                if unscheduled && link_rx.wake().await.is_err() {
                    break DisconnectReason::ServerError;
                }
            }
            _ = sleep => break DisconnectReason::KeepAliveTimeout,
            why = &mut kick_rx => break why.unwrap_or(DisconnectReason::DuplicateClientId),
            _ = shutdown.changed() => break DisconnectReason::ServerInitiated,
        }
    };

    if codec.is_v5() && reason == DisconnectReason::AuthError {
        let bye = Packet::Disconnect(
            rumqttd::protocol::Disconnect {
                reason_code: rumqttd::protocol::DisconnectReasonCode::NotAuthorized,
            },
            None,
        );
        let _ = write_packets(&mut stream, codec, &mut out, [bye]).await;
    }
    let _ = stream.shutdown().await;
    let session = Session {
        link_tx,
        link_rx,
        queue: VecDeque::new(),
        expiry: Duration::from_secs(expiry_s.unwrap_or(0)),
        subscriptions,
    };
    finish_link(&shared, &client_id, expiry_s, session, &mut outbound).await;
    drop(gone_tx);
    shared.unregister(&client_id, &session_id);
    shared.metrics.disconnects.fetch_add(1, Relaxed);
    shared.metrics.connections.fetch_sub(1, Relaxed);
    tracing::debug!(client_id, reason = reason.as_str(), "disconnected");
    if reason != DisconnectReason::ClientInitiated {
        if let Some(will) = will {
            publish_will(&shared, &principal, &client, &publisher, will).await;
        }
    }
    shared
        .presence
        .disconnected(&client_id, &session_id, reason)
        .await;
}

/// The connection is over: park a persistent session (with everything not
/// yet acknowledged by the device), or leave the router.
async fn finish_link(
    shared: &Shared,
    client_id: &str,
    expiry_s: Option<u64>,
    mut session: Session,
    outbound: &mut Outbound,
) {
    if expiry_s.is_none() {
        let goodbye = Packet::Disconnect(
            rumqttd::protocol::Disconnect {
                reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
            },
            None,
        );
        let _ = session.link_tx.send(goodbye).await;
        return;
    }
    // Unacknowledged messages, oldest first: the session's own, then the
    // router's (which the router is told are delivered: the host owns them).
    let mut queue: VecDeque<Queued> = outbound.host.drain(..).map(|(_, q)| q).collect();
    queue.append(&mut session.queue);
    for (pkid, q) in outbound.router.drain(..) {
        let ack = Packet::PubAck(
            PubAck {
                pkid,
                reason: PubAckReason::Success,
            },
            None,
        );
        let _ = session.link_tx.send(ack).await;
        queue.push_back(q);
    }
    session.queue = queue;
    shared.sessions.park(client_id, session);
}

async fn publish_will(
    shared: &Shared,
    principal: &Option<Principal>,
    client: &Arc<str>,
    publisher: &Arc<Publisher>,
    will: rumqttd::protocol::LastWill,
) {
    let Ok(topic) = std::str::from_utf8(&will.topic) else {
        return;
    };
    let allowed = policy::refuse_publish(topic).is_none()
        && principal
            .as_ref()
            .is_none_or(|p| p.policy.allows_publish(topic));
    if !allowed {
        shared.metrics.count("policy.will_refused", 1);
        tracing::warn!(client_id = %client, topic, "last will not published: not allowed by the device's policy");
        return;
    }
    if will.retain {
        if let Some(retained) = &shared.retained {
            let qos = u8::from(will.qos != rumqttd::protocol::QoS::AtMostOnce);
            retained.record(topic, &will.message, qos, crate::clock::now_ms());
        }
    }
    shared
        .presence
        .publish_raw_with(topic.to_string(), will.message.clone(), will.retain);
    shared
        .engine
        .send(Ingest {
            topic: topic.to_string(),
            payload: will.message.clone(),
            from: publisher.clone(),
            properties: None,
            basic_ingest: None,
            received_at: crate::clock::now_ms(),
            hops: 0,
        })
        .await;
}

/// The SUBACK failure code for a refused filter.
fn refused_code(codec: Codec) -> SubscribeReasonCode {
    match codec {
        Codec::V4 => SubscribeReasonCode::Failure,
        Codec::V5 => SubscribeReasonCode::NotAuthorized,
    }
}

/// Put the refused filters' failure codes back into the router's SUBACK.
fn complete_suback(packet: Packet, partial: &mut HashMap<u16, PartialSub>, codec: Codec) -> Packet {
    match packet {
        Packet::SubAck(mut ack, props) => {
            if let Some(p) = partial.remove(&ack.pkid) {
                let mut granted = ack.return_codes.into_iter();
                ack.return_codes = (0..p.total)
                    .map(|i| {
                        if p.refused.contains(&i) {
                            refused_code(codec)
                        } else {
                            granted.next().unwrap_or(refused_code(codec))
                        }
                    })
                    .collect();
            }
            Packet::SubAck(ack, props)
        }
        other => other,
    }
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

/// Count and log a refused connection; `kind` names its counter
/// (`refused.<kind>` in `weir status`).
pub fn refuse(shared: &Shared, peer: &SocketAddr, kind: &str, why: &str) {
    shared.metrics.connections_refused.fetch_add(1, Relaxed);
    shared.metrics.count(&format!("refused.{kind}"), 1);
    tracing::warn!(%peer, kind, reason = why, "connection refused");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::QoS;

    #[test]
    fn suback_is_completed_in_request_order() {
        let mut partial = HashMap::new();
        partial.insert(
            7,
            PartialSub {
                refused: vec![0, 2],
                total: 4,
            },
        );
        let ack = Packet::SubAck(
            SubAck {
                pkid: 7,
                return_codes: vec![
                    SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    SubscribeReasonCode::Success(QoS::AtMostOnce),
                ],
            },
            None,
        );
        match complete_suback(ack, &mut partial, Codec::V5) {
            Packet::SubAck(a, _) => assert_eq!(
                a.return_codes,
                vec![
                    SubscribeReasonCode::NotAuthorized,
                    SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    SubscribeReasonCode::NotAuthorized,
                    SubscribeReasonCode::Success(QoS::AtMostOnce),
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert!(partial.is_empty());
    }
}
