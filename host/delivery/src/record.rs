//! The spool's on-disk framing.
//!
//! A segment file starts with the 8-byte [`MAGIC`], then records:
//!
//! ```text
//! u32 LE  body length (8 + payload length)
//! u32 LE  CRC-32 (IEEE) of the body
//! body:   u64 LE push time (ms since the Unix epoch) ++ payload (the item; see crate::codec)
//! ```
//!
//! A record whose header is incomplete, whose length is out of range or runs
//! past the end of the file, or whose CRC does not match is *torn*: the
//! spool truncates the file there.

use std::io::{self, Read};

use serde::Serialize;

/// First bytes of every segment file (format version 1).
pub(crate) const MAGIC: &[u8; 8] = b"WEIRSPL1";
/// Length of [`MAGIC`] as a file offset.
pub(crate) const MAGIC_LEN: u64 = MAGIC.len() as u64;
/// Length + CRC.
pub(crate) const HEADER_LEN: usize = 8;
/// Header plus the timestamp: a record's size beyond its payload.
pub(crate) const OVERHEAD: usize = HEADER_LEN + 8;
/// Largest payload a record may carry.
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one record holding `item` (encoded by [`crate::codec`]) to
/// `out`. On error `out` is left as it was.
pub(crate) fn encode_item<T: Serialize>(
    out: &mut Vec<u8>,
    ts_ms: u64,
    item: &T,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&ts_ms.to_le_bytes());
    if let Err(e) = crate::codec::encode(out, item) {
        out.truncate(start);
        return Err(EncodeError::Serialize(e));
    }
    let payload = out.len() - start - OVERHEAD;
    if payload > MAX_PAYLOAD {
        out.truncate(start);
        return Err(EncodeError::TooLarge(payload));
    }
    seal(out, start);
    Ok(())
}

/// Appends one record with an already serialized payload.
pub(crate) fn encode_raw(out: &mut Vec<u8>, ts_ms: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&ts_ms.to_le_bytes());
    out.extend_from_slice(payload);
    seal(out, start);
}

/// Fills in the length and CRC of the record starting at `start`.
fn seal(out: &mut [u8], start: usize) {
    let body = &out[start + HEADER_LEN..];
    // The body is at most MAX_PAYLOAD + 8 bytes, far below u32::MAX.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why an item could not be framed.
#[derive(Debug)]
pub(crate) enum EncodeError {
    Serialize(rmp_serde::encode::Error),
    TooLarge(usize),
}

/// One record read back.
#[derive(Debug, PartialEq)]
pub(crate) struct Record {
    pub ts_ms: u64,
    pub payload: Vec<u8>,
}

impl Record {
    /// Size of the record on disk.
    pub(crate) fn frame_len(&self) -> u64 {
        (OVERHEAD + self.payload.len()) as u64
    }
}

/// Result of reading at a record boundary.
#[derive(Debug, PartialEq)]
pub(crate) enum Read1 {
    Record(Record),
    /// No bytes left.
    End,
    /// The bytes left do not form a valid record.
    Torn(String),
}

/// Reads one record from `r`, which has `remaining` bytes before the end of
/// the segment's valid data.
pub(crate) fn read_record<R: Read>(r: &mut R, remaining: u64) -> io::Result<Read1> {
    if remaining == 0 {
        return Ok(Read1::End);
    }
    if remaining < OVERHEAD as u64 {
        return Ok(Read1::Torn(format!(
            "{remaining} trailing bytes, shorter than a record header"
        )));
    }
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len < 8 || len > (MAX_PAYLOAD + 8) as u64 {
        return Ok(Read1::Torn(format!("invalid record length {len}")));
    }
    if len > remaining - HEADER_LEN as u64 {
        return Ok(Read1::Torn(format!(
            "record of {len} bytes runs past the end ({} bytes left)",
            remaining - HEADER_LEN as u64
        )));
    }
    let mut ts = [0u8; 8];
    r.read_exact(&mut ts)?;
    let mut payload = vec![0u8; (len - 8) as usize];
    r.read_exact(&mut payload)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&ts);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(Read1::Torn("CRC mismatch".to_owned()));
    }
    Ok(Read1::Record(Record {
        ts_ms: u64::from_le_bytes(ts),
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut bytes: &[u8]) -> Vec<Read1> {
        let mut out = Vec::new();
        loop {
            let remaining = bytes.len() as u64;
            let r = read_record(&mut bytes, remaining).expect("in-memory read");
            let stop = !matches!(r, Read1::Record(_));
            out.push(r);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_item(&mut buf, 42, &vec![1, 2, 3]).expect("encodes");
        encode_raw(&mut buf, 43, b"\"x\"");
        // The tag byte, then a MessagePack array of three fixints.
        let item = vec![crate::codec::MSGPACK, 0x93, 1, 2, 3];
        assert_eq!(buf.len(), (OVERHEAD + 5) + (OVERHEAD + 3));
        assert_eq!(
            read_all(&buf),
            vec![
                Read1::Record(Record {
                    ts_ms: 42,
                    payload: item
                }),
                Read1::Record(Record {
                    ts_ms: 43,
                    payload: b"\"x\"".to_vec()
                }),
                Read1::End,
            ]
        );
    }

    #[test]
    fn torn_tail_is_detected() {
        let mut buf = Vec::new();
        encode_raw(&mut buf, 1, b"12345");
        encode_raw(&mut buf, 2, b"67890");
        let whole = buf.len();
        for cut in 1..(OVERHEAD + 5) {
            let got = read_all(&buf[..whole - cut]);
            assert_eq!(got.len(), 2, "cut {cut}");
            assert!(matches!(got[1], Read1::Torn(_)), "cut {cut}: {:?}", got[1]);
        }
    }

    #[test]
    fn flipped_bit_fails_crc() {
        let mut buf = Vec::new();
        encode_raw(&mut buf, 1, b"12345");
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(read_all(&buf), vec![Read1::Torn("CRC mismatch".to_owned())]);
    }

    /// An item whose `Serialize` fails halfway.
    struct Unserializable;

    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeSeq};
            let mut seq = s.serialize_seq(Some(2))?;
            seq.serialize_element(&1)?;
            Err(S::Error::custom("cannot"))
        }
    }

    #[test]
    fn unserializable_item_leaves_buffer_untouched() {
        let mut buf = b"keep".to_vec();
        assert!(matches!(
            encode_item(&mut buf, 0, &Unserializable),
            Err(EncodeError::Serialize(_))
        ));
        assert_eq!(buf, b"keep");
    }
}
