//! `encode`/`decode` (base64) and the hash functions (`md5`, `sha1`, `sha2` family).

use super::{arg, Func};
use crate::value::V;
use base64::Engine;
use sha2::Digest;
use std::borrow::Cow;

pub(super) fn call<'a>(f: Func, args: &[V<'a>]) -> V<'a> {
    let a = arg(args, 0);
    match f {
        Func::Encode => {
            if !is_base64(arg(args, 1)) {
                return V::Undef;
            }
            let enc = match a {
                V::Bytes(b) => base64_encode(b),
                V::Undef => return V::Undef,
                V::Null => base64_encode(b"null"),
                other => match other.to_str() {
                    Some(s) => base64_encode(s.as_bytes()),
                    None => return V::Undef,
                },
            };
            V::Str(Cow::Owned(enc))
        }
        Func::Decode => {
            if !is_base64(arg(args, 1)) {
                return V::Undef;
            }
            let V::Str(s) = a else { return V::Undef };
            match base64::engine::general_purpose::STANDARD.decode(s.trim().as_bytes()) {
                // A JSON document decodes to its value (addressable, as
                // in AWS's `decode(x, 'base64').temperature`); other text
                // stays a string.
                Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(value) => V::from_owned(value),
                    Err(_) => match String::from_utf8(bytes) {
                        Ok(text) => V::Str(Cow::Owned(text)),
                        Err(_) => V::Undef,
                    },
                },
                // AWS: "The function returns NULL if the string cannot be
                // decoded."
                Err(_) => V::Null,
            }
        }
        Func::Md5 => hash::<md5::Md5>(a),
        Func::Sha1 => hash::<sha1::Sha1>(a),
        Func::Sha224 => hash::<sha2::Sha224>(a),
        Func::Sha256 => hash::<sha2::Sha256>(a),
        Func::Sha384 => hash::<sha2::Sha384>(a),
        Func::Sha512 => hash::<sha2::Sha512>(a),
        _ => V::Undef,
    }
}

fn is_base64(v: &V) -> bool {
    matches!(v, V::Str(s) if s.eq_ignore_ascii_case("base64"))
}

fn hash<'a, D: Digest>(v: &V) -> V<'a> {
    let Some(s) = super::string::string_arg(v) else {
        return V::Undef;
    };
    let out = D::digest(s.as_bytes());
    let mut hex = String::with_capacity(out.len() * 2);
    for b in out.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    V::Str(Cow::Owned(hex))
}

/// Standard base64 with padding.
pub fn base64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hashes() {
        let e = call(
            Func::Encode,
            &[V::Str("hello".into()), V::Str("base64".into())],
        );
        assert!(matches!(&e, V::Str(s) if s == "aGVsbG8="));
        let d = call(Func::Decode, &[e, V::Str("base64".into())]);
        assert!(matches!(&d, V::Str(s) if s == "hello"));
        let bad = call(
            Func::Decode,
            &[V::Str("***".into()), V::Str("base64".into())],
        );
        assert!(matches!(bad, V::Null));
        let h = call(Func::Md5, &[V::Str("hello".into())]);
        assert!(matches!(&h, V::Str(s) if s == "5d41402abc4b2a76b9719d911017c592"));
    }
}
