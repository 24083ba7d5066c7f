//! How an item is written in a spool record's payload.
//!
//! Items are spooled as MessagePack (structs as maps with their field
//! names, so a field added later with a serde default still reads old
//! records), behind the tag byte [`MSGPACK`]. Encoding a reading this way
//! costs a fraction of JSON: numbers are copied, not formatted, and a
//! payload string full of quotes is copied, not escaped.
//!
//! A payload without the tag is JSON, the format spools had before; such
//! records, left by an older Weir, are still read. The tag is `0xC1`, a
//! byte that MessagePack never uses and that cannot begin JSON text (it is
//! not even UTF-8), so the two can never be mistaken for each other.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// First byte of a MessagePack payload.
pub(crate) const MSGPACK: u8 = 0xC1;

/// Why a payload could not be read as an item.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("{0}")]
    MsgPack(#[from] rmp_serde::decode::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Appends `item` as a tagged MessagePack payload. On error `out` may hold
/// part of it: the caller truncates.
pub(crate) fn encode<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    item: &T,
) -> Result<(), rmp_serde::encode::Error> {
    out.push(MSGPACK);
    rmp_serde::encode::write_named(out, item)
}

/// The item in `payload`, whichever format it was written in.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    match payload.split_first() {
        Some((&MSGPACK, rest)) => Ok(rmp_serde::from_slice(rest)?),
        _ => Ok(serde_json::from_slice(payload)?),
    }
}

/// A payload as JSON, for `rejected.jsonl`: the decoded value, or the
/// bytes as (lossy) text when they do not decode at all.
pub(crate) fn to_json(payload: &[u8]) -> serde_json::Value {
    decode::<serde_json::Value>(payload).unwrap_or_else(|_| {
        let text = match payload.split_first() {
            Some((&MSGPACK, rest)) => rest,
            _ => payload,
        };
        serde_json::Value::String(String::from_utf8_lossy(text).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        device: String,
        time: Option<i64>,
        metrics: Vec<(String, f64)>,
        payload: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Wider {
        device: String,
        #[serde(default)]
        added_later: Option<u32>,
    }

    fn row() -> Row {
        Row {
            device: "dev-1".into(),
            time: None,
            metrics: vec![("t".into(), 21.123456789012345), ("nan".into(), f64::MAX)],
            payload: r#"{"t":21.123456789012345,"s":"a\"b"}"#.into(),
        }
    }

    #[test]
    fn round_trips_and_old_json_records_still_read() {
        let mut out = Vec::new();
        encode(&mut out, &row()).unwrap();
        assert_eq!(out[0], MSGPACK);
        assert_eq!(decode::<Row>(&out).unwrap(), row());
        let json = serde_json::to_vec(&row()).unwrap();
        assert_eq!(decode::<Row>(&json).unwrap(), row());
        // Fields are named: a reader with a field added since reads it.
        let wider: Wider = decode(&out).unwrap();
        assert_eq!((wider.device.as_str(), wider.added_later), ("dev-1", None));
    }

    #[test]
    fn rejected_payloads_read_as_json() {
        let mut out = Vec::new();
        encode(&mut out, &row()).unwrap();
        assert_eq!(to_json(&out), serde_json::to_value(row()).unwrap());
        assert_eq!(to_json(b"{\"a\":1}"), serde_json::json!({"a": 1}));
        assert_eq!(to_json(b"not json"), serde_json::json!("not json"));
        let err = decode::<Row>(&[MSGPACK, 0x92, 1]).unwrap_err().to_string();
        assert!(!err.is_empty());
    }
}
