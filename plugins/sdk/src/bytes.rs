//! Byte comparison for plugins: `memcmp` and `bcmp` eight bytes at a time.
//!
//! Every string comparison a plugin makes ends in `memcmp` or `bcmp`:
//! `==` on `str`, map lookups by name, `Ord` in a `BTreeMap<String, _>`.
//! On `wasm32-wasip2` they come from wasi-libc, which compares one byte per
//! loop iteration. That loop was the largest single cost of the zscore
//! plugin (14% of its time, more than its hashing), so the SDK links these
//! word-at-a-time versions into every plugin built with it, in place of
//! libc's. Off wasm32 nothing is replaced; [`compare`] is tested natively.
//! [`same`] is string equality without the call, for hot lookups.

/// `memcmp`'s result for two equally long byte strings: negative, zero or
/// positive as `a` sorts before, equal to or after `b`. Never calls
/// `memcmp` itself (no slice `==` or `cmp` inside).
pub fn compare(a: &[u8], b: &[u8]) -> i32 {
    let n = if a.len() < b.len() { a.len() } else { b.len() };
    if n < 8 {
        let mut i = 0;
        while i < n {
            let (x, y) = (a[i], b[i]);
            if x != y {
                return x as i32 - y as i32;
            }
            i += 1;
        }
        return 0;
    }
    // Whole words, then the last eight bytes (overlapping bytes already
    // found equal, so the first difference in that word is the first one).
    let mut i = 0;
    loop {
        let at = if i + 8 <= n { i } else { n - 8 };
        let (x, y) = (word(a, at), word(b, at));
        if x != y {
            return order(x, y);
        }
        if at == n - 8 {
            return 0;
        }
        i += 8;
    }
}

/// Whether two equally long byte strings are equal: two overlapping loads
/// for up to 16 bytes, no loop. Inlined where it is called, so hot
/// comparisons (map keys, metric names) make no `memcmp` call at all.
#[inline(always)]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = if a.len() < b.len() { a.len() } else { b.len() };
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        // No loop for the common lengths: in Wasm every loop header is an
        // epoch check (the host's call deadline).
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if word(a, i) != word(b, i) {
                    return false;
                }
                i += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
    }
}

/// Whether `a == b`, compared inline (see [`equal`]).
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && equal(a.as_bytes(), b.as_bytes())
}

/// Replace the text of `dst` with `src`, keeping `dst`'s buffer.
///
/// Up to 16 bytes are moved as two overlapping loads and stores, with no
/// copy loop or call. With bulk memory (on for `wasm32-wasip2`) a copy
/// whose length is known only at run time is a `memory.copy`
/// instruction, which wasmtime runs as a call out of the instance into the
/// host: dearer than the copy itself for the short texts readings are
/// made of (a number, a status word). Longer texts are copied as usual.
#[inline]
pub fn assign(dst: &mut String, src: &str) {
    let n = src.len();
    dst.clear();
    if n > 16 {
        dst.push_str(src);
        return;
    }
    dst.reserve(n);
    let (from, to) = (src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: `dst` has room for `n` bytes (reserved above) and `src` holds
    // `n`; every offset written and read below is below `n`. The bytes
    // copied are all of `src`, valid UTF-8, so `dst` is valid UTF-8 of
    // length `n` when its length is set.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                *to = *from;
                *to.add(n / 2) = *from.add(n / 2);
                *to.add(n - 1) = *from.add(n - 1);
            }
            4..=7 => {
                move_unaligned::<u32>(from, to, 0);
                move_unaligned::<u32>(from, to, n - 4);
            }
            _ => {
                move_unaligned::<u64>(from, to, 0);
                move_unaligned::<u64>(from, to, n - 8);
            }
        }
        dst.as_mut_vec().set_len(n);
    }
}

/// Copy one `T` from `from + at` to `to + at`, unaligned.
///
/// # Safety
/// Both ranges `at..at + size_of::<T>()` must be in bounds.
#[inline(always)]
unsafe fn move_unaligned<T: Copy>(from: *const u8, to: *mut u8, at: usize) {
    // SAFETY: the caller keeps both ranges in bounds.
    unsafe {
        let v = core::ptr::read_unaligned(from.add(at).cast::<T>());
        core::ptr::write_unaligned(to.add(at).cast::<T>(), v);
    }
}

/// The order of the first differing byte of two words loaded by [`word`]
/// (first byte least significant).
fn order(x: u64, y: u64) -> i32 {
    let (x, y) = (x.swap_bytes(), y.swap_bytes());
    if x < y {
        -1
    } else {
        1
    }
}

/// Bytes `i..i + 8` of `s` as one (unaligned, little-endian) load.
#[inline]
fn word(s: &[u8], i: usize) -> u64 {
    assert!(i + 8 <= s.len());
    // SAFETY: the 8 bytes at `i` are in bounds (asserted above).
    u64::from_le(unsafe { core::ptr::read_unaligned(s.as_ptr().add(i).cast::<u64>()) })
}

/// Bytes `i..i + 4` of `s` as one unaligned load.
#[inline]
fn half(s: &[u8], i: usize) -> u32 {
    assert!(i + 4 <= s.len());
    // SAFETY: the 4 bytes at `i` are in bounds (asserted above).
    unsafe { core::ptr::read_unaligned(s.as_ptr().add(i).cast::<u32>()) }
}

/// C `memcmp`, replacing wasi-libc's byte loop.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes (C's contract).
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    // SAFETY: the caller promises `n` readable bytes at each pointer.
    unsafe {
        compare(
            core::slice::from_raw_parts(a, n),
            core::slice::from_raw_parts(b, n),
        )
    }
}

/// C `bcmp` (zero when equal), which LLVM emits for equality tests.
///
/// # Safety
/// As [`memcmp`].
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    // SAFETY: same contract as `memcmp`.
    let same = unsafe {
        equal(
            core::slice::from_raw_parts(a, n),
            core::slice::from_raw_parts(b, n),
        )
    };
    i32::from(!same)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(x: i32) -> i32 {
        x.signum()
    }

    #[test]
    fn orders_like_slices() {
        let words: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"temperature",
            b"temperaturf",
            b"humidity",
            b"pressure\xff",
            b"pressure\x00",
            b"0123456789abcdef0123",
            b"0123456789abcdef0124",
            b"0123456789abcdeg0123",
        ];
        for a in &words {
            for b in &words {
                let n = a.len().min(b.len());
                let expected = match a[..n].cmp(&b[..n]) {
                    std::cmp::Ordering::Less => -1,
                    std::cmp::Ordering::Equal => 0,
                    std::cmp::Ordering::Greater => 1,
                };
                assert_eq!(sign(compare(&a[..n], &b[..n])), expected, "{a:?} {b:?}");
                assert_eq!(equal(&a[..n], &b[..n]), expected == 0, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn every_position_of_a_difference_is_seen() {
        let base = [7u8; 37];
        for i in 0..base.len() {
            let mut other = base;
            other[i] = 8;
            assert!(compare(&base, &other) < 0, "difference at {i}");
            assert!(compare(&other, &base) > 0, "difference at {i}");
            for n in i + 1..=base.len() {
                assert!(!equal(&base[..n], &other[..n]), "difference at {i} of {n}");
                assert!(
                    compare(&base[..n], &other[..n]) < 0,
                    "difference at {i} of {n}"
                );
            }
            for n in 0..=i {
                assert!(equal(&base[..n], &other[..n]), "{n} bytes before {i}");
                assert_eq!(compare(&base[..n], &other[..n]), 0, "{n} bytes before {i}");
            }
        }
        assert_eq!(compare(&base, &base), 0);
    }

    #[test]
    fn assign_copies_every_length_into_any_buffer() {
        let text = "0123456789abcdefghijé-ü";
        for end in (0..=text.len()).filter(|&n| text.is_char_boundary(n)) {
            let src = &text[..end];
            // Into an empty buffer, a longer text and a shorter one.
            for start in ["", "a much longer text than any source here", "xy"] {
                let mut dst = start.to_string();
                assign(&mut dst, src);
                assert_eq!(dst, src, "{end} bytes over {start:?}");
            }
        }
    }
}
