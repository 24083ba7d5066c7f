//! Numeric functions (`abs` … `trunc`, bit operations, trigonometry) and the
//! random sources behind `rand()` and `newuuid()`.

use super::{arg, Func};
use crate::value::{arith, dec, whole_as_i64, Arith, Num, V};
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

pub(super) fn call<'a>(f: Func, args: &[V<'a>]) -> V<'a> {
    let a = arg(args, 0);
    let b = arg(args, 1);
    match f {
        Func::Abs => match a.to_num() {
            Some(Num::Int(i)) => i
                .checked_abs()
                .map(V::Int)
                .unwrap_or(V::Dec((i as f64).abs())),
            Some(Num::Dec(d)) => V::Dec(d.abs()),
            None => V::Undef,
        },
        Func::Acos => f64_fn(a, f64::acos),
        Func::Asin => f64_fn(a, f64::asin),
        Func::Atan => f64_fn(a, f64::atan),
        Func::Atan2 => match (a.to_f64(), b.to_f64()) {
            (Some(y), Some(x)) => dec(y.atan2(x)),
            _ => V::Undef,
        },
        Func::Cos => f64_fn(a, f64::cos),
        Func::Cosh => f64_fn(a, f64::cosh),
        Func::Sin => f64_fn(a, f64::sin),
        Func::Sinh => f64_fn(a, f64::sinh),
        Func::Tan => f64_fn(a, f64::tan),
        Func::Tanh => f64_fn(a, f64::tanh),
        Func::Exp => f64_fn(a, f64::exp),
        Func::Ln => f64_fn(a, f64::ln),
        Func::Log => f64_fn(a, f64::log10),
        Func::Sqrt => f64_fn(a, f64::sqrt),
        Func::Power => match (a.to_f64(), b.to_f64()) {
            (Some(x), Some(y)) => dec(x.powf(y)),
            _ => V::Undef,
        },
        Func::Bitand => bit(a, b, |x, y| x & y),
        Func::Bitor => bit(a, b, |x, y| x | y),
        Func::Bitxor => bit(a, b, |x, y| x ^ y),
        Func::Bitnot => a.to_int().map(|x| V::Int(!x)).unwrap_or(V::Undef),
        Func::Ceil => round_with(a, f64::ceil),
        Func::Floor => round_with(a, f64::floor),
        // Halves away from zero, as AWS's examples give them (`round(1.5)`
        // = 2, `round(-1.5)` = -2; the prose's "rounded up" would make the
        // latter -1).
        Func::Round => round_with(a, f64::round),
        Func::Sign => match a.to_num() {
            Some(Num::Int(i)) => V::Int(i.signum()),
            Some(Num::Dec(d)) => V::Int(if d > 0.0 {
                1
            } else if d < 0.0 {
                -1
            } else {
                0
            }),
            None => V::Undef,
        },
        // "If the argument is not a valid ASCII value, the result is
        // Undefined."
        Func::Chr => a
            .to_int()
            .and_then(|i| u8::try_from(i).ok())
            .filter(u8::is_ascii)
            .map(|b| V::Str(char::from(b).to_string().into()))
            .unwrap_or(V::Undef),
        // AWS documents remainder as equivalent to mod.
        Func::Mod | Func::Remainder => arith(Arith::Mod, a, b),
        // AWS's table: Undefined, Null and a NaN Decimal give the second
        // argument; a Decimal that is not NaN and any other value (a
        // string, a Boolean, …) give the first, as it is.
        Func::Nanvl => match a {
            V::Undef | V::Null => b.clone(),
            V::Dec(d) if d.is_nan() => b.clone(),
            _ => a.clone(),
        },
        Func::Rand => V::Dec(rand_f64()),
        Func::Trunc => trunc(a, b),
        _ => V::Undef,
    }
}

fn f64_fn<'a>(a: &V, f: fn(f64) -> f64) -> V<'a> {
    a.to_f64().map(|x| dec(f(x))).unwrap_or(V::Undef)
}

fn bit<'a>(a: &V, b: &V, f: fn(i64, i64) -> i64) -> V<'a> {
    match (a.to_int(), b.to_int()) {
        (Some(x), Some(y)) => V::Int(f(x, y)),
        _ => V::Undef,
    }
}

fn round_with<'a>(a: &V, f: fn(f64) -> f64) -> V<'a> {
    match a.to_num() {
        Some(Num::Int(i)) => V::Int(i),
        Some(Num::Dec(d)) => whole(f(d)),
        None => V::Undef,
    }
}

/// A rounded Decimal as an Int, or still a Decimal beyond the Int range.
fn whole<'a>(r: f64) -> V<'a> {
    whole_as_i64(r).map_or_else(|| dec(r), V::Int)
}

/// `trunc(x, places)`: cut (toward zero) to `places` decimal places. AWS:
/// "If the second argument is less than zero, it is set to zero."
fn trunc<'a>(a: &V, b: &V) -> V<'a> {
    let places = match b.to_num() {
        Some(Num::Dec(d)) if d < 0.0 => Some(0),
        Some(Num::Int(i)) if i < 0 => Some(0),
        _ => b.to_int(),
    };
    let (Some(x), Some(places)) = (a.to_num(), places) else {
        return V::Undef;
    };
    match x {
        Num::Int(i) => V::Int(i),
        Num::Dec(d) => {
            if places == 0 {
                return whole(d.trunc());
            }
            // Work on the shortest decimal text so 2.31 does not become 2.3099999.
            let text = format!("{d}");
            match text.find('.') {
                Some(dot) => {
                    let keep = (dot + 1 + places.min(400) as usize).min(text.len());
                    let cut = &text[..keep];
                    cut.parse::<f64>()
                        .map(|v| crate::value::whole_to_int(v).into_v())
                        .unwrap_or(V::Undef)
                }
                None => V::Dec(d),
            }
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        h.finish() | 1
    });
}

/// A fast, non-cryptographic random `u64` (xorshift64*, seeded per thread from std's hasher keys).
pub fn rand_u64() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Uniform in `[0, 1)`.
pub fn rand_f64() -> f64 {
    (rand_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A random (version 4) UUID in its hyphenated lowercase form.
pub fn new_uuid() -> String {
    let hi = rand_u64();
    let lo = rand_u64();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(f: Func, args: &[V<'static>]) -> Option<serde_json::Value> {
        call(f, args).into_json()
    }

    #[test]
    fn examples_from_aws_docs() {
        assert_eq!(c(Func::Abs, &[V::Int(-5)]), Some(5.into()));
        assert_eq!(c(Func::Ceil, &[V::Dec(1.2)]), Some(2.into()));
        assert_eq!(c(Func::Ceil, &[V::Dec(-1.2)]), Some((-1).into()));
        assert_eq!(c(Func::Round, &[V::Dec(1.5)]), Some(2.into()));
        assert_eq!(
            c(Func::Trunc, &[V::Dec(2.3123), V::Int(2)]),
            Some(2.31.into())
        );
        assert_eq!(
            c(Func::Trunc, &[V::Dec(2.888), V::Int(2)]),
            Some(2.88.into())
        );
        assert_eq!(c(Func::Trunc, &[V::Dec(2.3), V::Int(0)]), Some(2.into()));
        assert_eq!(c(Func::Bitand, &[V::Int(13), V::Int(5)]), Some(5.into()));
        assert_eq!(c(Func::Sqrt, &[V::Int(-1)]), None);
    }

    #[test]
    fn trunc_negative_places_are_zero() {
        assert_eq!(c(Func::Trunc, &[V::Dec(2.3), V::Int(-1)]), Some(2.into()));
        assert_eq!(
            c(Func::Trunc, &[V::Dec(123.45), V::Int(-2)]),
            Some(123.into())
        );
        assert_eq!(
            c(Func::Trunc, &[V::Dec(-123.45), V::Dec(-1.5)]),
            Some((-123).into())
        );
        assert_eq!(
            c(Func::Trunc, &[V::Dec(123.45), V::Dec(-1e30)]),
            Some(123.into())
        );
        assert_eq!(c(Func::Trunc, &[V::Int(123), V::Int(-2)]), Some(123.into()));
    }

    #[test]
    fn nanvl_table() {
        let s = |x: &str| V::Str(x.to_string().into());
        assert_eq!(c(Func::Nanvl, &[V::Int(8), V::Int(3)]), Some(8.into()));
        assert_eq!(c(Func::Nanvl, &[V::Dec(2.5), V::Int(3)]), Some(2.5.into()));
        assert_eq!(
            c(Func::Nanvl, &[V::Dec(f64::NAN), V::Int(3)]),
            Some(3.into())
        );
        assert_eq!(c(Func::Nanvl, &[V::Undef, V::Int(3)]), Some(3.into()));
        assert_eq!(c(Func::Nanvl, &[V::Null, V::Int(3)]), Some(3.into()));
        assert_eq!(c(Func::Nanvl, &[s("x"), V::Int(3)]), Some("x".into()));
        assert_eq!(c(Func::Nanvl, &[s("5"), V::Int(3)]), Some("5".into()));
        assert_eq!(
            c(Func::Nanvl, &[V::Bool(false), V::Int(3)]),
            Some(false.into())
        );
    }

    #[test]
    fn chr_is_ascii_only() {
        assert_eq!(c(Func::Chr, &[V::Int(65)]), Some("A".into()));
        assert_eq!(c(Func::Chr, &[V::Dec(65.9)]), Some("A".into()));
        assert_eq!(c(Func::Chr, &[V::Str("49".into())]), Some("1".into()));
        assert_eq!(c(Func::Chr, &[V::Int(0)]), Some("\0".into()));
        assert_eq!(c(Func::Chr, &[V::Int(127)]), Some("\u{7f}".into()));
        assert_eq!(c(Func::Chr, &[V::Int(128)]), None);
        assert_eq!(c(Func::Chr, &[V::Int(233)]), None);
        assert_eq!(c(Func::Chr, &[V::Int(0x1F600)]), None);
        assert_eq!(c(Func::Chr, &[V::Int(-1)]), None);
        assert_eq!(c(Func::Chr, &[V::Bool(true)]), None);
    }

    #[test]
    fn remainder_is_mod() {
        assert_eq!(c(Func::Remainder, &[V::Int(8), V::Int(3)]), Some(2.into()));
        assert_eq!(
            c(Func::Remainder, &[V::Dec(8.5), V::Int(3)]),
            Some(2.5.into())
        );
        assert_eq!(c(Func::Remainder, &[V::Int(8), V::Int(0)]), None);
        let cases: [[V<'static>; 2]; 7] = [
            [V::Int(-8), V::Int(3)],
            [V::Int(8), V::Dec(2.5)],
            [V::Str("8".into()), V::Int(3)],
            [V::Str("8.5".into()), V::Str("3".into())],
            [V::Str("x".into()), V::Int(3)],
            [V::Bool(true), V::Int(3)],
            [V::Null, V::Int(3)],
        ];
        for args in &cases {
            assert_eq!(c(Func::Remainder, args), c(Func::Mod, args), "{args:?}");
        }
    }

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let r = rand_f64();
        assert!((0.0..1.0).contains(&r));
    }
}
