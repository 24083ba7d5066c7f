//! Type tests (`isUndefined`, `isString`, …), `cast`, `get` and `transform`.

use super::{arg, Func};
use crate::ast::CastType;
use crate::value::{dec, Num, V};
use serde_json::Value;
use std::borrow::Cow;

pub(super) fn call<'a>(f: Func, args: &mut [V<'a>]) -> V<'a> {
    let a = arg(args, 0);
    match f {
        Func::IsUndefined => V::Bool(matches!(a, V::Undef)),
        Func::IsNull => V::Bool(matches!(a, V::Null)),
        Func::IsString => V::Bool(matches!(a, V::Str(_))),
        Func::IsNumber => V::Bool(matches!(a, V::Int(_) | V::Dec(_))),
        Func::IsBoolean => V::Bool(matches!(a, V::Bool(_))),
        Func::IsArray => V::Bool(a.as_array().is_some()),
        Func::IsObject => V::Bool(a.as_object().is_some()),
        Func::Get => {
            let key = arg(args, 1).clone();
            match args.first_mut() {
                Some(V::Str(s)) => char_at(s, &key),
                Some(base) => get(std::mem::replace(base, V::Undef), &key),
                None => V::Undef,
            }
        }
        Func::Transform => transform(arg(args, 0), arg(args, 1), arg(args, 2)),
        _ => V::Undef,
    }
}

/// `transform(mode, object, array)`. The one mode AWS defines,
/// `enrichArray`, gives each object of `array` with the attributes of
/// `object` added after its own (an attribute of both takes `object`'s
/// value: those are the attributes applied to every element). Any other
/// mode, an `object` that is not an object, or an `array` that is not an
/// array of objects gives Undefined.
fn transform<'a>(mode: &V, object: &V, array: &V) -> V<'a> {
    if !matches!(mode, V::Str(m) if m == "enrichArray") {
        return V::Undef;
    }
    let (Some(attrs), Some(items)) = (object.as_object(), array.as_array()) else {
        return V::Undef;
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(own) = item else {
            return V::Undef;
        };
        let mut m = own.clone();
        for (k, v) in attrs {
            m.insert(k.clone(), v.clone());
        }
        out.push(Value::Object(m));
    }
    V::Own(Value::Array(out))
}

/// `get(array, index)` / `get(object, key)`; also what `a[i]` and `a.b` use.
pub fn get<'a>(base: V<'a>, key: &V) -> V<'a> {
    match base {
        V::Json(v) => match lookup(v, key) {
            Some(x) => V::from_json(x),
            None => V::Undef,
        },
        V::Own(v) => match lookup(&v, key) {
            Some(x) => V::from_owned(x.clone()),
            None => V::Undef,
        },
        _ => V::Undef,
    }
}

/// `get(string, index)`: AWS's "String | Any Type (converted to Int)" row,
/// the character at the 0-based index; Undefined when the index does not
/// convert or is outside the string.
fn char_at<'a>(s: &str, key: &V) -> V<'a> {
    index(key)
        .and_then(|i| s.chars().nth(i))
        .map(|c| V::Str(Cow::Owned(c.to_string())))
        .unwrap_or(V::Undef)
}

/// An array or string index: AWS's standard "to Int" conversion (a Decimal
/// rounds to the nearest Int, a numeric String is truncated), and not
/// negative.
fn index(key: &V) -> Option<usize> {
    key.to_int_standard().and_then(|i| usize::try_from(i).ok())
}

fn lookup<'v>(v: &'v Value, key: &V) -> Option<&'v Value> {
    match v {
        Value::Array(arr) => index(key).and_then(|i| arr.get(i)),
        Value::Object(map) => match key {
            V::Str(s) => map.get(s.as_ref()),
            V::Int(_) => map.get(key.to_str()?.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// `cast(value AS type)`.
pub fn cast<'a>(v: V<'a>, ty: CastType) -> V<'a> {
    match ty {
        CastType::Int => match v {
            V::Bool(b) => V::Int(b as i64),
            other => other.to_int().map(V::Int).unwrap_or(V::Undef),
        },
        CastType::Decimal => match v {
            V::Bool(b) => V::Dec(if b { 1.0 } else { 0.0 }),
            other => match other.to_num() {
                Some(Num::Int(i)) => V::Dec(i as f64),
                Some(Num::Dec(d)) => dec(d),
                None => V::Undef,
            },
        },
        CastType::Bool => v.to_bool_conv().map(V::Bool).unwrap_or(V::Undef),
        CastType::String => match v {
            V::Str(s) => V::Str(s),
            other => other
                .to_str()
                .map(|s| V::Str(Cow::Owned(s.into_owned())))
                .unwrap_or(V::Undef),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn casts() {
        assert!(matches!(cast(V::Bool(true), CastType::Int), V::Int(1)));
        assert!(matches!(cast(V::Dec(2.7), CastType::Int), V::Int(2)));
        assert!(matches!(
            cast(V::Str("3.5".into()), CastType::Int),
            V::Int(3)
        ));
        assert!(matches!(cast(V::Int(0), CastType::Bool), V::Bool(false)));
        assert!(matches!(cast(V::Int(2), CastType::String), V::Str(s) if s == "2"));
        assert!(cast(V::Null, CastType::Int).is_undef());
    }

    #[test]
    fn transform_enrich_array() {
        let t = |mode: &str, o: Value, a: Value| {
            call(
                Func::Transform,
                &mut [V::Str(mode.to_string().into()), V::Own(o), V::Own(a)],
            )
            .into_json()
        };
        assert_eq!(
            t(
                "enrichArray",
                json!({"k": 1, "a": 9}),
                json!([{"a": 3}, {"b": 4}])
            ),
            Some(json!([{"a": 9, "k": 1}, {"b": 4, "k": 1, "a": 9}]))
        );
        assert_eq!(
            t("enrichArray", json!({"k": 1}), json!([])),
            Some(json!([]))
        );
        assert_eq!(t("other", json!({"k": 1}), json!([{"a": 3}])), None);
        assert_eq!(t("enrichArray", json!([1]), json!([{"a": 3}])), None);
        assert_eq!(
            t("enrichArray", json!({"k": 1}), json!([{"a": 3}, 4])),
            None
        );
        assert_eq!(t("enrichArray", json!({"k": 1}), json!({"a": 3})), None);
    }

    #[test]
    fn get_string_is_the_character_at_a_0_based_index() {
        let g = |s: &str, k: V<'static>| {
            call(Func::Get, &mut [V::Str(s.to_string().into()), k]).into_json()
        };
        assert_eq!(g("abc", V::Int(0)), Some(json!("a")));
        assert_eq!(g("abc", V::Int(1)), Some(json!("b")));
        assert_eq!(g("abc", V::Int(2)), Some(json!("c")));
        assert_eq!(g("héllo", V::Int(1)), Some(json!("é")));
        assert_eq!(g("abc", V::Int(3)), None);
        assert_eq!(g("abc", V::Int(-1)), None);
        assert_eq!(g("abc", V::Dec(1.6)), Some(json!("c")));
        assert_eq!(g("abc", V::Str("1.9".into())), Some(json!("b")));
        assert_eq!(g("abc", V::Str(" 1".into())), None);
        assert_eq!(g("abc", V::Bool(true)), None);
        // No conversion of the first argument: a number is not a string.
        assert_eq!(
            call(Func::Get, &mut [V::Int(123), V::Int(0)]).into_json(),
            None
        );
    }

    #[test]
    fn array_index_converts_to_int() {
        let v = json!(["a", "b", "c"]);
        let at = |k: V| get(V::Json(&v), &k).into_json();
        assert_eq!(at(V::Dec(1.4)), Some(json!("b")));
        assert_eq!(at(V::Dec(1.5)), Some(json!("c")));
        assert_eq!(at(V::Dec(-1.5)), None);
        assert_eq!(at(V::Str("1".into())), Some(json!("b")));
        assert_eq!(at(V::Str("1.9".into())), Some(json!("b")));
        assert_eq!(at(V::Str(" 1".into())), None);
        assert_eq!(at(V::Str("+1".into())), None);
        assert_eq!(at(V::Bool(true)), None);
    }

    #[test]
    fn get_array_and_object() {
        let v = json!({"a": [1, 2, {"b": "c"}]});
        let arr = get(V::Json(&v), &V::Str("a".into()));
        let third = get(arr, &V::Int(2));
        assert!(matches!(get(third, &V::Str("b".into())), V::Str(s) if s == "c"));
    }
}
