//! The compressed chunk: up to [`CHUNK_POINTS`] points of one series within
//! one UTC day, sorted by time with unique times, stored as one redb value.
//!
//! Layout (all varints LEB128, signed ones zigzag):
//! - `1` (format version), point count, first time, last time — the header,
//!   readable without decoding the rest;
//! - times: for each point after the first, the delta-of-delta of its time
//!   (deltas start at 0; arithmetic wraps, so any `i64` round-trips);
//! - values: the first as 8 bytes little-endian, then each one XORed with
//!   the previous value's bits, written as a control byte (leading zero
//!   bytes << 4 | trailing zero bytes; `0x80` for "same as previous") and
//!   the middle bytes, little-endian.

use super::codec::{put_ivarint, put_uvarint, Reader};

/// Most points one chunk holds.
pub const CHUNK_POINTS: usize = 128;

const VERSION: u8 = 1;
const SAME_VALUE: u8 = 0x80;

/// What a chunk's header tells without decoding its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub count: usize,
    pub first: i64,
    pub last: i64,
}

/// Appends the encoding of `points` (non-empty; the caller keeps them
/// sorted by time with unique times) to `out`.
pub fn encode(points: &[(i64, f64)], out: &mut Vec<u8>) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return;
    };
    out.push(VERSION);
    put_uvarint(out, points.len() as u64);
    put_ivarint(out, first.0);
    put_ivarint(out, last.0);
    let (mut prev_t, mut prev_delta) = (first.0, 0i64);
    for &(t, _) in &points[1..] {
        let delta = t.wrapping_sub(prev_t);
        put_ivarint(out, delta.wrapping_sub(prev_delta));
        prev_t = t;
        prev_delta = delta;
    }
    let mut prev = first.1.to_bits();
    out.extend_from_slice(&prev.to_le_bytes());
    for &(_, v) in &points[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            out.push(SAME_VALUE);
            continue;
        }
        let lz = x.leading_zeros() / 8;
        let tz = x.trailing_zeros() / 8;
        out.push(((lz << 4) | tz) as u8);
        let middle = (x >> (tz * 8)).to_le_bytes();
        out.extend_from_slice(&middle[..(8 - lz - tz) as usize]);
    }
}

fn read_header(r: &mut Reader<'_>) -> Option<Header> {
    if r.u8()? != VERSION {
        return None;
    }
    let count = usize::try_from(r.uvarint()?).ok().filter(|c| *c > 0)?;
    let first = r.ivarint()?;
    let last = r.ivarint()?;
    Some(Header { count, first, last })
}

/// The header of an encoded chunk; `None` if it is malformed.
pub fn header(bytes: &[u8]) -> Option<Header> {
    read_header(&mut Reader::new(bytes))
}

/// Appends the points of an encoded chunk to `out`; `None` (with `out`
/// possibly partly extended) if the bytes are malformed.
pub fn decode(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Option<Header> {
    let mut r = Reader::new(bytes);
    let h = read_header(&mut r)?;
    // Each point takes at least one byte, which bounds a corrupt count.
    if h.count > r.remaining() {
        return None;
    }
    let start = out.len();
    out.reserve(h.count);
    let (mut t, mut delta) = (h.first, 0i64);
    out.push((t, 0.0));
    for _ in 1..h.count {
        delta = delta.wrapping_add(r.ivarint()?);
        t = t.wrapping_add(delta);
        out.push((t, 0.0));
    }
    if t != h.last {
        return None;
    }
    let mut prev = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    out[start].1 = f64::from_bits(prev);
    for slot in &mut out[start + 1..] {
        let ctrl = r.u8()?;
        let x = if ctrl == SAME_VALUE {
            0
        } else {
            let (lz, tz) = (u32::from(ctrl >> 4), u32::from(ctrl & 0x0F));
            if lz + tz >= 8 {
                return None;
            }
            let mut middle = [0u8; 8];
            let n = (8 - lz - tz) as usize;
            middle[..n].copy_from_slice(r.take(n)?);
            u64::from_le_bytes(middle) << (tz * 8)
        };
        prev ^= x;
        slot.1 = f64::from_bits(prev);
    }
    r.is_empty().then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(points: &[(i64, f64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(points, &mut buf);
        let mut out = vec![(7, 7.0)];
        let h = decode(&buf, &mut out).unwrap();
        assert_eq!(out[0], (7, 7.0));
        assert_eq!(out.len(), points.len() + 1);
        for (got, want) in out[1..].iter().zip(points) {
            assert_eq!(got.0, want.0);
            assert_eq!(got.1.to_bits(), want.1.to_bits());
        }
        assert_eq!(
            h,
            Header {
                count: points.len(),
                first: points[0].0,
                last: points[points.len() - 1].0
            }
        );
        assert_eq!(header(&buf), Some(h));
        buf
    }

    #[test]
    fn regular_series_compress_well() {
        let points: Vec<(i64, f64)> = (0..128)
            .map(|i| (1_700_000_000_000 + i * 10_000, 20.0 + (i % 4) as f64 * 0.25))
            .collect();
        let buf = round_trip(&points);
        assert!(buf.len() < 128 * 4, "{} bytes", buf.len());
    }

    #[test]
    fn round_trips_awkward_times_and_values() {
        round_trip(&[(5, 1.0)]);
        round_trip(&[(-86_400_000, -0.0), (-5, 0.0), (-1, -1.5), (0, 1e300)]);
        // Equal times are not produced by the store but still round-trip.
        round_trip(&[(3, 1.0), (3, 2.0), (3, 2.0), (4, 2.0)]);
        round_trip(&[
            (i64::MIN, f64::MAX),
            (-1, f64::MIN),
            (0, f64::MIN_POSITIVE),
            (1, 5e-324),
            (i64::MAX, f64::INFINITY),
        ]);
        round_trip(&[(i64::MAX, 1.0), (i64::MIN, -1.0), (i64::MAX, 0.1)]);
        let noisy: Vec<(i64, f64)> = (0..200i64)
            .map(|i| (i * i * 37 - 5_000, ((i * 7919) % 1000) as f64 / 7.0 - 50.0))
            .collect();
        round_trip(&noisy);
    }

    #[test]
    fn malformed_bytes_are_refused_not_panicked_on() {
        let mut buf = Vec::new();
        encode(&[(1, 1.0), (2, 2.5), (4, -3.0)], &mut buf);
        let mut out = Vec::new();
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], &mut out), None, "cut at {cut}");
        }
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(decode(&long, &mut out), None);
        let mut bad_version = buf.clone();
        bad_version[0] = 9;
        assert_eq!(header(&bad_version), None);
        assert_eq!(decode(&[1, 0xFF, 0xFF, 0xFF, 0x7F, 0, 0], &mut out), None);
        for i in 0..buf.len() {
            let mut flipped = buf.clone();
            flipped[i] ^= 0xA5;
            let _ = decode(&flipped, &mut out);
        }
    }
}
