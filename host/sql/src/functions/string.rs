//! String functions: `concat`, `length`, `lower`, `substring`, `trim`, the
//! `regexp_*` family and friends. Other arguments are converted to strings
//! the AWS way (`length(false)` is 5, arrays and objects are their JSON
//! text); Null and Undefined give Undefined.

use super::{arg, Func};
use crate::value::{Num, V};
use regex::Regex;
use serde_json::Value;
use std::borrow::Cow;

pub(super) fn call<'a>(f: Func, args: &mut [V<'a>], re: Option<&Regex>) -> V<'a> {
    if f == Func::Concat {
        return concat(args);
    }
    let a = arg(args, 0);
    let b = arg(args, 1);
    let c = arg(args, 2);
    let r = match f {
        Func::Length => match a.as_array() {
            Some(arr) => Some(V::Int(arr.len() as i64)),
            None => string_arg(a).map(|s| V::Int(s.chars().count() as i64)),
        },
        Func::Numbytes => string_arg(a).map(|s| V::Int(s.len() as i64)),
        Func::Lower => string_arg(a).map(|s| owned(s.to_lowercase())),
        Func::Upper => string_arg(a).map(|s| owned(s.to_uppercase())),
        Func::Ltrim => string_arg(a).map(|s| owned(s.trim_start().to_string())),
        Func::Rtrim => string_arg(a).map(|s| owned(s.trim_end().to_string())),
        Func::Trim => string_arg(a).map(|s| owned(s.trim().to_string())),
        Func::Startswith => two(a, b).map(|(x, y)| V::Bool(x.starts_with(y.as_ref()))),
        Func::Endswith => two(a, b).map(|(x, y)| V::Bool(x.ends_with(y.as_ref()))),
        Func::Indexof => two(a, b).map(|(x, y)| {
            V::Int(match x.find(y.as_ref()) {
                Some(byte) => x[..byte].chars().count() as i64,
                None => -1,
            })
        }),
        Func::Lpad | Func::Rpad => match (string_arg(a), pad_count(b)) {
            (Some(s), Some(n)) => {
                let pad = " ".repeat(n);
                Some(owned(if f == Func::Lpad {
                    pad + &s
                } else {
                    s.into_owned() + &pad
                }))
            }
            _ => None,
        },
        Func::Replace => match (string_arg(a), string_arg(b), string_arg(c)) {
            (Some(s), Some(from), Some(to)) => Some(owned(s.replace(from.as_ref(), &to))),
            _ => None,
        },
        Func::Substring => substring(a, b, if args.len() > 2 { Some(c) } else { None }),
        Func::RegexpMatches => {
            with_regex(b, re, |r| string_arg(a).map(|s| V::Bool(r.is_match(&s))))
        }
        Func::RegexpSubstr => with_regex(b, re, |r| {
            string_arg(a).map(|s| {
                owned(
                    r.find(&s)
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
        }),
        Func::RegexpReplace => with_regex(b, re, |r| match (string_arg(a), string_arg(c)) {
            (Some(s), Some(rep)) => Some(owned(r.replace_all(&s, rep.as_ref()).into_owned())),
            _ => None,
        }),
        _ => None,
    };
    r.unwrap_or(V::Undef)
}

fn owned<'a>(s: String) -> V<'a> {
    V::Str(Cow::Owned(s))
}

/// A string argument after AWS's standard conversion: strings as they are,
/// numbers and booleans printed, arrays and objects serialised as JSON
/// (`lower(["HELLO"])` is `"[\"hello\"]"`); Null, Undefined and a binary
/// payload have none here.
pub(crate) fn string_arg<'x>(v: &'x V) -> Option<Cow<'x, str>> {
    match v {
        V::Null | V::Undef | V::Bytes(_) => None,
        _ => v.to_str(),
    }
}

fn two<'x>(a: &'x V, b: &'x V) -> Option<(Cow<'x, str>, Cow<'x, str>)> {
    Some((string_arg(a)?, string_arg(b)?))
}

fn with_regex<'a>(
    pattern: &V,
    pre: Option<&Regex>,
    f: impl FnOnce(&Regex) -> Option<V<'a>>,
) -> Option<V<'a>> {
    match pre {
        Some(r) => f(r),
        None => {
            let p = string_arg(pattern)?;
            let r = Regex::new(&p).ok()?;
            f(&r)
        }
    }
}

/// `lpad`/`rpad`'s count: a Decimal (or numeric String) rounded down to an
/// Int, then, as AWS says, "The Int argument must be between 0 and 1000. If
/// the provided value is outside of this valid range, the argument is set to
/// the nearest valid value (0 or 1000)".
fn pad_count(v: &V) -> Option<usize> {
    Some(match v.to_num()? {
        Num::Int(i) => i.clamp(0, 1000) as usize,
        Num::Dec(d) => d.floor().clamp(0.0, 1000.0) as usize,
    })
}

/// `substring(s, start[, end])`: 0-based, end exclusive, both clamped to the string.
fn substring<'a>(a: &V, b: &V, c: Option<&V>) -> Option<V<'a>> {
    let s = string_arg(a)?;
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let start = clamp_index(b, n)?;
    let end = match c {
        Some(c) => clamp_index(c, n)?,
        None => n,
    };
    if start >= end {
        return Some(owned(String::new()));
    }
    Some(owned(chars[start as usize..end as usize].iter().collect()))
}

/// An index converted to Int (Decimals round down) and clamped to `0..=n`,
/// whatever its size: `substring(false, -2.411E247)` is `"false"`.
fn clamp_index(v: &V, n: i64) -> Option<i64> {
    Some(match v.to_num()? {
        Num::Int(i) => i.clamp(0, n),
        Num::Dec(d) => d.floor().clamp(0.0, n as f64) as i64,
    })
}

/// `concat(…)`: strings join; if any argument is an array the result is an
/// array with the others appended in order.
fn concat<'a>(args: &mut [V<'a>]) -> V<'a> {
    if args.is_empty() || args.iter().any(|a| matches!(a, V::Undef)) {
        return V::Undef;
    }
    if args.iter().any(|a| a.as_array().is_some()) {
        let mut out: Vec<Value> = Vec::new();
        for a in args.iter_mut() {
            if let Some(arr) = a.as_array() {
                out.extend(arr.iter().cloned());
            } else {
                match std::mem::replace(a, V::Undef).into_json() {
                    Some(v) => out.push(v),
                    None => return V::Undef,
                }
            }
        }
        return V::Own(Value::Array(out));
    }
    let mut s = String::new();
    for a in args.iter() {
        match a.to_str() {
            Some(p) => s.push_str(&p),
            None => return V::Undef,
        }
    }
    owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> V<'static> {
        V::Str(Cow::Owned(x.to_string()))
    }

    fn c(f: Func, mut args: Vec<V<'static>>) -> Option<Value> {
        call(f, &mut args, None).into_json()
    }

    #[test]
    fn substring_examples_from_aws_docs() {
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Int(0)]),
            Some("012345".into())
        );
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Int(2)]),
            Some("2345".into())
        );
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Dec(2.745)]),
            Some("2345".into())
        );
        assert_eq!(
            c(Func::Substring, vec![V::Int(123), V::Int(2)]),
            Some("3".into())
        );
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Int(-1)]),
            Some("012345".into())
        );
        assert_eq!(
            c(Func::Substring, vec![V::Bool(true), V::Dec(1.2)]),
            Some("rue".into())
        );
        assert_eq!(
            c(Func::Substring, vec![V::Bool(false), V::Dec(-2.411e247)]),
            Some("false".into())
        );
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Int(1), V::Int(3)]),
            Some("12".into())
        );
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Int(-50), V::Int(50)]),
            Some("012345".into())
        );
        assert_eq!(
            c(Func::Substring, vec![s("012345"), V::Int(3), V::Int(1)]),
            Some("".into())
        );
    }

    #[test]
    fn pad_count_is_clamped_to_0_through_1000() {
        for f in [Func::Lpad, Func::Rpad] {
            assert_eq!(c(f, vec![s("x"), V::Int(-1)]), Some("x".into()));
            assert_eq!(c(f, vec![s("x"), V::Dec(-2.5e30)]), Some("x".into()));
            let long = |n: V<'static>| match c(f, vec![s("x"), n]) {
                Some(Value::String(t)) => t.len(),
                other => panic!("{other:?}"),
            };
            assert_eq!(long(V::Int(1000)), 1001);
            assert_eq!(long(V::Int(5000)), 1001);
            assert_eq!(long(V::Dec(1e30)), 1001);
            assert_eq!(long(s("2.9")), 3);
            assert_eq!(c(f, vec![s("x"), V::Bool(true)]), None);
            assert_eq!(c(f, vec![s("x"), V::Null]), None);
        }
        assert_eq!(c(Func::Lpad, vec![s("x"), V::Int(2)]), Some("  x".into()));
        assert_eq!(c(Func::Rpad, vec![s("x"), V::Int(2)]), Some("x  ".into()));
    }

    #[test]
    fn arrays_and_objects_convert_to_json_text() {
        assert_eq!(
            c(Func::Lower, vec![V::Own(serde_json::json!(["HELLO"]))]),
            Some(r#"["hello"]"#.into())
        );
        assert_eq!(
            c(Func::Upper, vec![V::Own(serde_json::json!(["hello"]))]),
            Some(r#"["HELLO"]"#.into())
        );
        assert_eq!(
            c(Func::Trim, vec![V::Own(serde_json::json!({"k": " v "}))]),
            Some(r#"{"k":" v "}"#.into())
        );
        assert_eq!(c(Func::Lower, vec![V::Null]), None);
        assert_eq!(c(Func::Lower, vec![V::Bytes(b"AB")]), None);
    }

    #[test]
    fn concat_examples() {
        assert_eq!(c(Func::Concat, vec![]), None);
        assert_eq!(c(Func::Concat, vec![V::Int(1)]), Some("1".into()));
        assert_eq!(
            c(Func::Concat, vec![s("con"), s("cat")]),
            Some("concat".into())
        );
        assert_eq!(
            c(Func::Concat, vec![V::Int(1), s("hello")]),
            Some("1hello".into())
        );
    }
}
