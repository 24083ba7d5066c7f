//! Order-preserving byte keys for the series catalog.
//!
//! A series key is `enc(device) ‖ enc(metric)`, where `enc` escapes `0x00`
//! as `00 FF` and terminates with `00 01`. Byte order of keys is therefore
//! the order of (device, metric) — one device's series are one contiguous
//! range — and any string (including one holding NUL bytes) round-trips.
//! (Points themselves are keyed by the series' id and time; see `store`.)

/// Appends the escaped, terminated form of `s` to `out`.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// The prefix shared by every point of one series.
pub fn series_prefix(device: &str, metric: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(device.len() + metric.len() + 12);
    push_str(&mut out, device);
    push_str(&mut out, metric);
    out
}

/// The prefix shared by every series of one device.
pub fn device_prefix(device: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(device.len() + 2);
    push_str(&mut out, device);
    out
}

/// Reads one escaped string from the front of `bytes`, returning it and the
/// rest. `None` if the bytes are not a well-formed encoding.
pub fn take_str(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut raw = Vec::new();
    let mut i = 0;
    loop {
        match *bytes.get(i)? {
            0x00 => match *bytes.get(i + 1)? {
                0x01 => break,
                0xFF => raw.push(0),
                _ => return None,
            },
            b => {
                raw.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let s = String::from_utf8(raw).ok()?;
    Some((s, &bytes[i + 2..]))
}

/// Splits a series key (`enc(device) ‖ enc(metric)`) into its strings.
pub fn decode_series(bytes: &[u8]) -> Option<(String, String)> {
    let (device, rest) = take_str(bytes)?;
    let (metric, rest) = take_str(rest)?;
    rest.is_empty().then_some((device, metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_device_then_metric() {
        let mut keys = [
            series_prefix("b", "t"),
            series_prefix("a", "u"),
            series_prefix("a\0", "t"),
            series_prefix("ab", "a"),
            series_prefix("a", "t"),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| decode_series(k).unwrap()).collect();
        let s = |d: &str, m: &str| (d.to_string(), m.to_string());
        assert_eq!(
            decoded,
            vec![
                s("a", "t"),
                s("a", "u"),
                s("a\0", "t"),
                s("ab", "a"),
                s("b", "t")
            ]
        );
    }

    /// A string's encoding: its bytes, NUL escaped, then the terminator.
    #[test]
    fn strings_with_and_without_nul_encode_as_specified() {
        let mut out = Vec::new();
        push_str(&mut out, "dev-1");
        assert_eq!(out, b"dev-1\x00\x01");
        out.clear();
        push_str(&mut out, "a\0b\0");
        assert_eq!(out, b"a\x00\xFFb\x00\xFF\x00\x01");
        out.clear();
        push_str(&mut out, "");
        assert_eq!(out, b"\x00\x01");
    }

    #[test]
    fn series_round_trip_and_prefixes() {
        let k = series_prefix("dev\0x", "temp");
        assert_eq!(decode_series(&k), Some(("dev\0x".into(), "temp".into())));
        assert!(series_prefix("dev-1", "t").starts_with(&device_prefix("dev-1")));
        // "dev-1" must not be a prefix match for "dev-10".
        assert!(!series_prefix("dev-10", "t").starts_with(&device_prefix("dev-1")));
        assert_eq!(take_str(&[0x61, 0x00, 0x02]), None);
        assert_eq!(decode_series(&[0x61, 0x00, 0x01]), None);
    }
}
