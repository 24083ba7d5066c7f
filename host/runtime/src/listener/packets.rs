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
pub fn ack(publish: &Publish) -> Option<Packet> {
    let meta = meta(publish);
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
        assert_eq!(
            meta(&plain),
            Meta {
                qos: 0,
                pkid: 0,
                dup: false
            }
        );
    }
}
