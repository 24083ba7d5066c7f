//! Small helpers over rumqttd's packet types. rumqttd keeps a PUBLISH's
//! QoS, packet id and dup flag crate-private; its own (de)serialization is
//! the one public door to them, so these helpers go through it.

use bytes::{BufMut, Bytes, BytesMut};
use rumqttd::protocol::{Packet, PubAck, PubAckReason, Publish};

/// QoS, packet id and dup flag of a PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub qos: u8,
    pub pkid: u16,
    pub dup: bool,
}

pub fn meta(publish: &Publish) -> Meta {
    // Serialize a copy without its payload: header byte, then packet id.
    let mut head = publish.clone();
    head.payload = Bytes::new();
    let bytes = head.serialize();
    let header = bytes.first().copied().unwrap_or(0);
    let pkid = match (bytes.get(1), bytes.get(2)) {
        (Some(&hi), Some(&lo)) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    };
    Meta {
        qos: (header & 0b0110) >> 1,
        pkid,
        dup: header & 0b1000 != 0,
    }
}

/// QoS, packet id and dup flag of the PUBLISH at the start of `buf` (a
/// connection's bytes before they are parsed), read from its header: what
/// [`meta`] gives without copying the packet. `None` when `buf` does not
/// start with a PUBLISH whose header is all there.
pub fn peek_meta(buf: &[u8]) -> Option<Meta> {
    let header = *buf.first()?;
    if header >> 4 != 3 {
        return None;
    }
    let (qos, dup) = ((header & 0b0110) >> 1, header & 0b1000 != 0);
    // Remaining length: 1–4 bytes of base-128 varint.
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return None;
        }
    }
    if qos == 0 {
        return Some(Meta { qos, pkid: 0, dup });
    }
    // Topic (length-prefixed), then the packet id.
    let topic_len = usize::from(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]));
    let at = i + 2 + topic_len;
    let pkid = u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]);
    Some(Meta { qos, pkid, dup })
}

/// A PUBLISH with the given QoS, packet id and dup flag.
pub fn build(topic: &Bytes, payload: &Bytes, retain: bool, meta: Meta) -> Publish {
    let mut o = BytesMut::with_capacity(5 + topic.len() + payload.len());
    o.put_u8(0b0011_0000 | u8::from(retain) | (meta.qos.min(2) << 1) | (u8::from(meta.dup) << 3));
    o.put_u16(meta.pkid);
    o.put_u16(u16::try_from(topic.len()).unwrap_or(u16::MAX));
    o.put_slice(topic);
    o.put_slice(payload);
    Publish::deserialize(o.freeze())
}

/// The PUBACK a publish the host took is owed (`None` at QoS 0).
pub fn ack(meta: Meta) -> Option<Packet> {
    (meta.qos > 0).then(|| {
        Packet::PubAck(
            PubAck {
                pkid: meta.pkid,
                reason: PubAckReason::Success,
            },
            None,
        )
    })
}

/// A host answer for one connection: QoS 0, not retained.
pub fn answer(topic: String, payload: Vec<u8>) -> Packet {
    let meta = Meta {
        qos: 0,
        pkid: 0,
        dup: false,
    };
    Packet::Publish(
        build(&Bytes::from(topic), &Bytes::from(payload), false, meta),
        None,
    )
}

/// What rules may read of a PUBLISH's MQTT 5 properties (`None` when it
/// carries none of them, the usual case: no allocation per message).
pub fn rule_properties(
    props: &rumqttd::protocol::PublishProperties,
) -> Option<std::sync::Arc<weir_sql::MqttProperties>> {
    let any = props.content_type.is_some()
        || props.payload_format_indicator.is_some()
        || props.response_topic.is_some()
        || props.correlation_data.is_some()
        || !props.user_properties.is_empty();
    any.then(|| {
        std::sync::Arc::new(weir_sql::MqttProperties {
            content_type: props.content_type.clone(),
            payload_format_indicator: props.payload_format_indicator,
            response_topic: props.response_topic.clone(),
            correlation_data: props.correlation_data.as_ref().map(|d| d.to_vec()),
            user_properties: props.user_properties.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_through_build() {
        let topic = Bytes::from_static(b"cmd/t/dev-1/reboot");
        let payload = Bytes::from_static(b"{\"now\":true}");
        let m = Meta {
            qos: 1,
            pkid: 40_001,
            dup: true,
        };
        let p = build(&topic, &payload, false, m);
        assert_eq!(meta(&p), m);
        assert_eq!(p.topic, topic);
        assert_eq!(p.payload, payload);
        let plain = Publish::new("a/b", "x", false);
        assert_eq!(peek_meta(&plain.serialize()), Some(meta(&plain)));
        assert_eq!(
            meta(&plain),
            Meta {
                qos: 0,
                pkid: 0,
                dup: false
            }
        );
    }

    #[test]
    fn peek_meta_reads_what_either_codec_wrote() {
        use super::super::codec::Codec;
        // Remaining lengths of one and of two varint bytes.
        for payload_len in [3, 200, 20_000] {
            for (qos, pkid, dup) in [
                (0, 0, false),
                (1, 1, false),
                (1, 65_535, true),
                (2, 300, false),
            ] {
                for codec in [Codec::V4, Codec::V5] {
                    let m = Meta { qos, pkid, dup };
                    let topic = Bytes::from_static(b"dt/thermostat/dev-1/telemetry");
                    let payload = Bytes::from(vec![b'x'; payload_len]);
                    let mut out = BytesMut::new();
                    codec
                        .write(
                            Packet::Publish(build(&topic, &payload, false, m), None),
                            &mut out,
                        )
                        .unwrap();
                    assert_eq!(peek_meta(&out), Some(m), "{codec:?} {m:?}");
                    // Only the header is needed: cut after the packet id.
                    let head = out.len() - payload_len - usize::from(codec.is_v5());
                    assert_eq!(peek_meta(&out[..head]), Some(m), "{codec:?} {m:?}");
                    if qos > 0 {
                        assert_eq!(peek_meta(&out[..head - 1]), None);
                    }
                    match codec.read(&mut out, 1 << 20).unwrap() {
                        Packet::Publish(p, _) => assert_eq!(meta(&p), m),
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
        assert_eq!(peek_meta(&[0x40, 0x02, 0, 1]), None, "a PUBACK");
        assert_eq!(peek_meta(&[]), None);
    }
}
