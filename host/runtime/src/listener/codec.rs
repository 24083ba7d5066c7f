//! MQTT 3.1.1 and MQTT 5 on one listener: the protocol level in CONNECT
//! picks the codec, which then reads and writes every packet of that
//! connection. Both speak rumqttd's packet types, so the rest of the
//! listener is the same for both versions.

use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{Error, Packet, Protocol};

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    V4,
    V5,
}

/// What the start of a connection's bytes says about its protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum Detected {
    /// Not enough bytes yet to see the protocol level.
    NeedMore,
    Codec(Codec),
    /// Not a CONNECT, or a protocol level this broker does not speak.
    Unsupported(String),
}

impl Codec {
    /// Look at the CONNECT at the start of `buf`: fixed header, remaining
    /// length, protocol name, then the level byte (4 = 3.1.1, 5 = 5).
    pub fn detect(buf: &[u8]) -> Detected {
        let Some(&first) = buf.first() else {
            return Detected::NeedMore;
        };
        if first != 0x10 {
            return Detected::Unsupported(format!(
                "first packet is not CONNECT (type byte {first:#04x})"
            ));
        }
        // Remaining length: 1–4 bytes of base-128 varint.
        let mut i = 1;
        loop {
            let Some(&b) = buf.get(i) else {
                return Detected::NeedMore;
            };
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 4 {
                return Detected::Unsupported("malformed remaining length".into());
            }
        }
        let (Some(&hi), Some(&lo)) = (buf.get(i), buf.get(i + 1)) else {
            return Detected::NeedMore;
        };
        let name_len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(&level) = buf.get(i + 2 + name_len) else {
            return Detected::NeedMore;
        };
        match level {
            4 => Detected::Codec(Codec::V4),
            5 => Detected::Codec(Codec::V5),
            3 => Detected::Unsupported("MQTT 3.1 (MQIsdp) is not supported; use 3.1.1 or 5".into()),
            other => Detected::Unsupported(format!("unknown protocol level {other}")),
        }
    }

    pub fn read(&self, buf: &mut BytesMut, max: usize) -> Result<Packet, Error> {
        match self {
            Codec::V4 => V4.read_mut(buf, max),
            Codec::V5 => V5.read_mut(buf, max),
        }
    }

    pub fn write(&self, packet: Packet, out: &mut BytesMut) -> Result<usize, Error> {
        match self {
            Codec::V4 => V4.write(packet, out),
            Codec::V5 => V5.write(packet, out),
        }
    }

    pub fn is_v5(&self) -> bool {
        *self == Codec::V5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{Connect, ConnectProperties};

    fn connect_bytes(codec: Codec) -> BytesMut {
        let mut out = BytesMut::new();
        let props = codec.is_v5().then(|| ConnectProperties {
            session_expiry_interval: Some(60),
            receive_maximum: None,
            max_packet_size: None,
            topic_alias_max: None,
            request_response_info: None,
            request_problem_info: None,
            user_properties: vec![],
            authentication_method: None,
            authentication_data: None,
        });
        let connect = Connect {
            keep_alive: 30,
            client_id: "dev-1".into(),
            clean_session: false,
        };
        codec
            .write(Packet::Connect(connect, props, None, None, None), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn detects_both_levels_and_reads_back() {
        for codec in [Codec::V4, Codec::V5] {
            let mut bytes = connect_bytes(codec);
            for cut in 0..8 {
                assert_eq!(Codec::detect(&bytes[..cut]), Detected::NeedMore, "{cut}");
            }
            assert_eq!(Codec::detect(&bytes), Detected::Codec(codec));
            match codec.read(&mut bytes, 1024).unwrap() {
                Packet::Connect(c, props, ..) => {
                    assert_eq!(c.client_id, "dev-1");
                    assert!(!c.clean_session);
                    assert_eq!(
                        props.and_then(|p| p.session_expiry_interval),
                        codec.is_v5().then_some(60)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn refuses_what_is_not_connect() {
        assert!(matches!(
            Codec::detect(&[0x30, 0x02, 0, 0]),
            Detected::Unsupported(_)
        ));
        assert!(matches!(
            Codec::detect(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Detected::Unsupported(_)
        ));
        let mut v31 = vec![0x10, 0x10, 0x00, 0x06];
        v31.extend_from_slice(b"MQIsdp");
        v31.push(3);
        assert!(matches!(Codec::detect(&v31), Detected::Unsupported(_)));
    }
}
