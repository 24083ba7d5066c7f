//! Byte-level helpers shared by the WAL and chunk encodings: LEB128 varints,
//! zigzag signed integers, and a bounds-checked reader that never panics on
//! malformed input.

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Maps signed to unsigned so that small magnitudes stay small.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` zigzag-encoded as a varint.
#[inline]
pub fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// A cursor over a byte slice; every read returns `None` past the end or on
/// a malformed varint instead of panicking.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// True once every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    #[inline]
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    #[inline]
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                // The 10th byte may only carry the top bit.
                return (shift < 63 || b <= 1).then_some(v);
            }
        }
        None
    }

    #[inline]
    pub fn ivarint(&mut self) -> Option<i64> {
        self.uvarint().map(unzigzag)
    }

    #[inline]
    pub fn f64_le(&mut self) -> Option<f64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(f64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let values = [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN];
        let mut buf = Vec::new();
        for v in values {
            put_ivarint(&mut buf, v);
        }
        put_uvarint(&mut buf, u64::MAX);
        let mut r = Reader::new(&buf);
        for v in values {
            assert_eq!(r.ivarint(), Some(v));
        }
        assert_eq!(r.uvarint(), Some(u64::MAX));
        assert!(r.is_empty());
        assert_eq!(r.uvarint(), None);
    }

    #[test]
    fn malformed_varints_are_refused() {
        assert_eq!(Reader::new(&[0x80, 0x80]).uvarint(), None);
        assert_eq!(Reader::new(&[0xFF; 10]).uvarint(), None);
        assert_eq!(Reader::new(&[1, 2, 3]).take(4), None);
    }
}
