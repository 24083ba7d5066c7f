//! Runtime values of the SQL dialect and AWS's conversion and operator tables.
//!
//! [`V`] borrows from the payload wherever it can: paths into the message are
//! references, not copies. `Undefined` is a value here, as in AWS IoT SQL.

use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value during evaluation.
#[derive(Debug, Clone)]
pub enum V<'a> {
    /// AWS's `Undefined`: a missing key, or a function given bad arguments.
    Undef,
    Null,
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(Cow<'a, str>),
    /// An array or object borrowed from the message (never a scalar).
    Json(&'a Value),
    /// An array or object built during evaluation (never a scalar).
    Own(Value),
    /// A non-JSON payload (only `*` on a binary message produces this).
    Bytes(&'a [u8]),
}

impl<'a> V<'a> {
    /// The same value, borrowing what this one owns.
    pub fn borrowed(&'a self) -> V<'a> {
        match self {
            V::Undef => V::Undef,
            V::Null => V::Null,
            V::Bool(b) => V::Bool(*b),
            V::Int(i) => V::Int(*i),
            V::Dec(d) => V::Dec(*d),
            V::Str(s) => V::Str(Cow::Borrowed(s)),
            V::Json(v) => V::Json(v),
            // An owned array or object, lent: still never a scalar.
            V::Own(v) => V::Json(v),
            V::Bytes(b) => V::Bytes(b),
        }
    }
}

/// Type names used by `typeof`-like messages and tests.
impl V<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            V::Undef => "Undefined",
            V::Null => "Null",
            V::Bool(_) => "Boolean",
            V::Int(_) => "Int",
            V::Dec(_) => "Decimal",
            V::Str(_) => "String",
            V::Bytes(_) => "Binary",
            V::Json(v) => json_kind(v),
            V::Own(v) => json_kind(v),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "Array",
        _ => "Object",
    }
}

/// A number after conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Dec(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Dec(d) => d,
        }
    }
    pub fn into_v<'a>(self) -> V<'a> {
        match self {
            Num::Int(i) => V::Int(i),
            Num::Dec(d) => dec(d),
        }
    }
}

/// A Decimal result; non-finite results are Undefined.
pub fn dec<'a>(d: f64) -> V<'a> {
    if d.is_finite() {
        V::Dec(d)
    } else {
        V::Undef
    }
}

/// Convert a JSON number as SQL 2016-03-23 does: whole numbers are Ints.
pub fn num_from_json(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        return Num::Int(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    whole_to_int(f)
}

/// A float with no fraction left (a floor, round or trunc) as an Int, when
/// it is within the Int range (never for NaN or infinities).
pub fn whole_as_i64(r: f64) -> Option<i64> {
    (r.abs() < 9.2e18).then_some(r as i64)
}

/// `10.0` is processed as the Int `10` in SQL version 2016-03-23.
pub fn whole_to_int(f: f64) -> Num {
    match whole_as_i64(f).filter(|_| f.fract() == 0.0) {
        Some(i) => Num::Int(i),
        None => Num::Dec(f),
    }
}

/// Parse a string as a number: AWS's String → Decimal conversion, the one
/// every operator, `cast` and function uses. AWS converts only strings
/// matching `^-?\d+(\.\d+)?((?i)E-?\d+)?$` ("0", "-1.2", "5E-12"), so
/// " 5 ", "+5", ".5", "5." and "1E+3" are not numbers. Integers stay Ints
/// (`'12' > 9` compares 12 with 9); anything with a fraction or an exponent
/// is a Decimal.
pub fn parse_num(s: &str) -> Option<Num> {
    if !is_aws_number(s) {
        return None;
    }
    if !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Num::Int(i));
        }
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(Num::Dec(f)),
        _ => None,
    }
}

/// Whether `s` matches AWS's `^-?\d+(\.\d+)?((?i)E-?\d+)?$` (ASCII digits).
fn is_aws_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

impl<'a> V<'a> {
    /// View a payload value.
    #[inline]
    pub fn from_json(v: &'a Value) -> V<'a> {
        match v {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(*b),
            Value::Number(n) => num_from_json(n).into_v(),
            Value::String(s) => V::Str(Cow::Borrowed(s.as_str())),
            Value::Array(_) | Value::Object(_) => V::Json(v),
        }
    }

    /// Take ownership of a built JSON value.
    pub fn from_owned(v: Value) -> V<'a> {
        match v {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(b),
            Value::Number(n) => num_from_json(&n).into_v(),
            Value::String(s) => V::Str(Cow::Owned(s)),
            other => V::Own(other),
        }
    }

    /// The array or object behind this value, if it is one.
    #[inline]
    pub fn container(&self) -> Option<&Value> {
        match self {
            V::Json(v) => Some(v),
            V::Own(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        self.container().and_then(Value::as_array)
    }

    pub fn as_object(&self) -> Option<&Map<String, Value>> {
        self.container().and_then(Value::as_object)
    }

    pub fn is_undef(&self) -> bool {
        matches!(self, V::Undef)
    }

    /// Serialise to JSON; `None` for Undefined.
    pub fn into_json(self) -> Option<Value> {
        Some(match self {
            V::Undef => return None,
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(b),
            V::Int(i) => Value::Number(i.into()),
            V::Dec(d) => Value::Number(Number::from_f64(d)?),
            V::Str(s) => Value::String(s.into_owned()),
            V::Json(v) => v.clone(),
            V::Own(v) => v,
            V::Bytes(b) => Value::String(crate::functions::encoding::base64_encode(b)),
        })
    }

    /// A copy that owns all its data.
    pub fn to_static(&self) -> V<'static> {
        match self {
            V::Undef => V::Undef,
            V::Null => V::Null,
            V::Bool(b) => V::Bool(*b),
            V::Int(i) => V::Int(*i),
            V::Dec(d) => V::Dec(*d),
            V::Str(s) => V::Str(Cow::Owned(s.to_string())),
            V::Json(v) => V::Own((*v).clone()),
            V::Own(v) => V::Own(v.clone()),
            V::Bytes(b) => V::Str(Cow::Owned(crate::functions::encoding::base64_encode(b))),
        }
    }

    /// AWS "to Decimal"/number conversion: Int, Decimal, or a numeric String.
    pub fn to_num(&self) -> Option<Num> {
        match self {
            V::Int(i) => Some(Num::Int(*i)),
            V::Dec(d) => Some(Num::Dec(*d)),
            V::Str(s) => parse_num(s),
            _ => None,
        }
    }

    pub fn to_f64(&self) -> Option<f64> {
        self.to_num().map(Num::as_f64)
    }

    /// `cast(… AS Int)`'s conversion, which the functions whose tables say
    /// "rounded down to the nearest Int" (`bitand`, `chr`, `lpad`, `trunc`,
    /// …) also use: Decimals (and numeric strings) are rounded down.
    pub fn to_int(&self) -> Option<i64> {
        match self.to_num()? {
            Num::Int(i) => Some(i),
            Num::Dec(d) => whole_as_i64(d.floor()),
        }
    }

    /// AWS's standard "to Int" conversion (data types, "To Int"), which
    /// `get`'s index follows ("Any Type (converted to Int)"): a Decimal is
    /// "rounded to the nearest Int" (halves away from zero, as AWS's
    /// `round(-1.5)` is -2); a String is parsed as a Decimal whose decimal
    /// places are truncated. Anything else has no Int.
    pub fn to_int_standard(&self) -> Option<i64> {
        match self {
            V::Int(i) => Some(*i),
            V::Dec(d) => whole_as_i64(d.round()),
            V::Str(s) => match parse_num(s)? {
                Num::Int(i) => Some(i),
                Num::Dec(d) => whole_as_i64(d.trunc()),
            },
            _ => None,
        }
    }

    /// Boolean operand of AND / OR / NOT: a Boolean or "true"/"false" in any case.
    pub fn to_logic(&self) -> Option<bool> {
        match self {
            V::Bool(b) => Some(*b),
            V::Str(s) => str_bool(s),
            _ => None,
        }
    }

    /// AWS "to Boolean" (functions and cast): numbers are true when non-zero.
    pub fn to_bool_conv(&self) -> Option<bool> {
        match self {
            V::Bool(b) => Some(*b),
            V::Int(i) => Some(*i != 0),
            V::Dec(d) => Some(*d != 0.0),
            V::Str(s) => str_bool(s),
            _ => None,
        }
    }

    /// AWS "to String": scalars print, arrays and objects serialise as JSON;
    /// Null and Undefined have no string form.
    pub fn to_str(&self) -> Option<Cow<'_, str>> {
        match self {
            V::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            V::Int(i) => Some(Cow::Owned(i.to_string())),
            V::Dec(d) => Some(Cow::Owned(fmt_dec(*d))),
            V::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            V::Json(v) => Some(Cow::Owned(v.to_string())),
            V::Own(v) => Some(Cow::Owned(v.to_string())),
            V::Bytes(b) => Some(Cow::Owned(String::from_utf8_lossy(b).into_owned())),
            V::Null | V::Undef => None,
        }
    }
}

fn str_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Print a Decimal the way JSON output does (`2.5`, `3.0`, `1e21`).
pub fn fmt_dec(d: f64) -> String {
    match Number::from_f64(d) {
        Some(n) => n.to_string(),
        None => d.to_string(),
    }
}

/// `=`: `None` is Undefined.
pub fn eq(a: &V, b: &V) -> Option<bool> {
    Some(match (a, b) {
        (V::Undef, _) | (_, V::Undef) => return None,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Int(_) | V::Dec(_), V::Int(_) | V::Dec(_)) => {
            a.to_f64().unwrap_or(f64::NAN) == b.to_f64().unwrap_or(f64::NAN)
        }
        (V::Str(x), V::Str(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Null, V::Null) => true,
        (V::Bytes(x), V::Bytes(y)) => x == y,
        _ => match (a.container(), b.container()) {
            (Some(x), Some(y)) => json_eq(x, y),
            _ => false,
        },
    })
}

/// Structural equality with SQL number semantics (`1` equals `1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (num_from_json(x), num_from_json(y)) {
            (Num::Int(i), Num::Int(j)) => i == j,
            (x, y) => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `<`, `>`…: both sides are converted to Decimal; anything else is Undefined.
pub fn compare(a: &V, b: &V) -> Option<Ordering> {
    if let (V::Int(x), V::Int(y)) = (a, b) {
        return Some(x.cmp(y));
    }
    let x = a.to_num()?;
    let y = b.to_num()?;
    match (x, y) {
        (Num::Int(i), Num::Int(j)) => Some(i.cmp(&j)),
        _ => x.as_f64().partial_cmp(&y.as_f64()),
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// `+ - * / %` per AWS's tables: `+` with a String operand concatenates
/// (see [`concat_plus`]); otherwise Int op Int is Int (integer division for
/// `/`), any Decimal makes a Decimal, numeric strings are converted and make
/// a Decimal ("If all strings convert to decimals correctly, a Decimal value
/// is returned"), anything else (and division by zero) is Undefined.
pub fn arith<'a>(op: Arith, a: &V, b: &V) -> V<'a> {
    let strings = matches!(a, V::Str(_)) || matches!(b, V::Str(_));
    if op == Arith::Add && strings {
        return concat_plus(a, b);
    }
    let (Some(x), Some(y)) = (a.to_num(), b.to_num()) else {
        return V::Undef;
    };
    if strings {
        return float_arith(op, x.as_f64(), y.as_f64());
    }
    match (x, y) {
        (Num::Int(i), Num::Int(j)) => {
            let r = match op {
                Arith::Add => i.checked_add(j),
                Arith::Sub => i.checked_sub(j),
                Arith::Mul => i.checked_mul(j),
                Arith::Div => {
                    if j == 0 {
                        return V::Undef;
                    }
                    i.checked_div(j)
                }
                Arith::Mod => {
                    if j == 0 {
                        return V::Undef;
                    }
                    i.checked_rem(j).or(Some(0))
                }
            };
            match r {
                Some(v) => V::Int(v),
                None => float_arith(op, i as f64, j as f64),
            }
        }
        _ => float_arith(op, x.as_f64(), y.as_f64()),
    }
}

/// `+` with a String operand: AWS's table converts the other operand to a
/// string ("String + Any Value" and "Any Value + String") and concatenates,
/// so `'1' + 2` is `"12"`. The conversion is AWS's "to String", as `cast(…
/// AS String)` and `concat` do it ([`V::to_str`]); Null and Undefined have
/// no string form there, so `'a' + null`, `'a' + undefined` and the
/// reverse are Undefined (the table's "Other Value" row).
fn concat_plus<'a>(a: &V, b: &V) -> V<'a> {
    match (a.to_str(), b.to_str()) {
        (Some(x), Some(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(&x);
            s.push_str(&y);
            V::Str(Cow::Owned(s))
        }
        _ => V::Undef,
    }
}

fn float_arith<'a>(op: Arith, x: f64, y: f64) -> V<'a> {
    let r = match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => {
            if y == 0.0 {
                return V::Undef;
            }
            x / y
        }
        Arith::Mod => {
            if y == 0.0 {
                return V::Undef;
            }
            x % y
        }
    };
    dec(r)
}

/// Unary minus.
pub fn neg<'a>(a: &V) -> V<'a> {
    match a.to_num() {
        Some(Num::Int(i)) => i.checked_neg().map(V::Int).unwrap_or(V::Dec(-(i as f64))),
        Some(Num::Dec(d)) => V::Dec(-d),
        None => V::Undef,
    }
}

/// `a IN b`: `b` must be an array.
pub fn in_array(a: &V, b: &V) -> Option<bool> {
    if a.is_undef() {
        return None;
    }
    let arr = b.as_array()?;
    Some(arr.iter().any(|e| eq(a, &V::from_json(e)) == Some(true)))
}

/// `a CONTAINS b`: substring for strings, membership for arrays.
pub fn contains(a: &V, b: &V) -> Option<bool> {
    if b.is_undef() {
        return None;
    }
    if let Some(arr) = a.as_array() {
        return Some(arr.iter().any(|e| eq(&V::from_json(e), b) == Some(true)));
    }
    match (a, b) {
        (V::Str(x), V::Str(y)) => Some(x.contains(y.as_ref())),
        (V::Str(x), other) => {
            let y = other.to_str()?;
            if matches!(other, V::Json(_) | V::Own(_) | V::Bytes(_)) {
                return None;
            }
            Some(x.contains(y.as_ref()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_decimals_are_ints() {
        let v = json!(10.0);
        assert!(matches!(V::from_json(&v), V::Int(10)));
        let v = json!(10.5);
        assert!(matches!(V::from_json(&v), V::Dec(d) if d == 10.5));
    }

    #[test]
    fn arithmetic_table() {
        assert!(matches!(
            arith(Arith::Add, &V::Int(1), &V::Int(2)),
            V::Int(3)
        ));
        assert!(matches!(
            arith(Arith::Div, &V::Int(7), &V::Int(2)),
            V::Int(3)
        ));
        assert!(matches!(arith(Arith::Div, &V::Int(7), &V::Dec(2.0)), V::Dec(d) if d == 3.5));
        assert!(arith(Arith::Div, &V::Int(7), &V::Int(0)).is_undef());
        assert!(arith(Arith::Add, &V::Bool(true), &V::Int(1)).is_undef());
        assert!(matches!(
            arith(Arith::Mul, &V::Int(i64::MAX), &V::Int(2)),
            V::Dec(_)
        ));
    }

    #[test]
    fn plus_with_a_string_concatenates() {
        let s = |x: &str| V::Str(Cow::Owned(x.to_string()));
        let plus = |a: &V, b: &V| arith(Arith::Add, a, b).into_json();
        assert_eq!(plus(&s("5"), &V::Int(1)), Some(json!("51")));
        assert_eq!(plus(&V::Int(1), &s("5")), Some(json!("15")));
        assert_eq!(plus(&s("1"), &s("2")), Some(json!("12")));
        assert_eq!(plus(&s("x"), &V::Dec(2.5)), Some(json!("x2.5")));
        assert_eq!(plus(&s("x"), &V::Bool(true)), Some(json!("xtrue")));
        let arr = json!([1, "a"]);
        assert_eq!(plus(&s("x"), &V::Json(&arr)), Some(json!(r#"x[1,"a"]"#)));
        assert_eq!(plus(&s("x"), &V::Null), None);
        assert_eq!(plus(&V::Undef, &s("x")), None);
        assert_eq!(plus(&s("x"), &V::Undef), None);
    }

    #[test]
    fn other_operators_on_numeric_strings_give_decimals() {
        let s = |x: &str| V::Str(Cow::Owned(x.to_string()));
        assert!(matches!(arith(Arith::Div, &s("5"), &V::Int(2)), V::Dec(d) if d == 2.5));
        assert!(matches!(arith(Arith::Div, &s("6"), &V::Int(2)), V::Dec(d) if d == 3.0));
        assert!(matches!(arith(Arith::Sub, &V::Int(5), &s("2")), V::Dec(d) if d == 3.0));
        assert!(matches!(arith(Arith::Mul, &s("1.5"), &s("2")), V::Dec(d) if d == 3.0));
        assert!(matches!(arith(Arith::Mod, &s("8"), &V::Int(3)), V::Dec(d) if d == 2.0));
        assert!(arith(Arith::Div, &s("5"), &V::Int(0)).is_undef());
        assert!(arith(Arith::Sub, &s("x"), &V::Int(1)).is_undef());
        assert!(arith(Arith::Sub, &s(" 5"), &V::Int(1)).is_undef());
    }

    #[test]
    fn strings_convert_only_in_aws_number_form() {
        assert_eq!(parse_num("0"), Some(Num::Int(0)));
        assert_eq!(parse_num("-12"), Some(Num::Int(-12)));
        assert_eq!(parse_num("-1.2"), Some(Num::Dec(-1.2)));
        assert_eq!(parse_num("5E-12"), Some(Num::Dec(5e-12)));
        assert_eq!(parse_num("5e3"), Some(Num::Dec(5000.0)));
        assert_eq!(parse_num("2.50"), Some(Num::Dec(2.5)));
        for bad in [
            "", " 5 ", " 5", "5 ", "+5", ".5", "5.", "1E+3", "1e", "-", "--5", "5-", "1.2.3",
            "0x10", "NaN", "inf", "1_000", "１",
        ] {
            assert_eq!(parse_num(bad), None, "{bad:?}");
        }
        // Every conversion goes through it.
        assert_eq!(compare(&V::Str(" 5".into()), &V::Int(1)), None);
        assert_eq!(V::Str("+5".into()).to_int(), None);
        assert_eq!(V::Str(".5".into()).to_f64(), None);
    }

    #[test]
    fn standard_int_conversion() {
        assert_eq!(V::Dec(1.5).to_int_standard(), Some(2));
        assert_eq!(V::Dec(1.4).to_int_standard(), Some(1));
        assert_eq!(V::Dec(-1.5).to_int_standard(), Some(-2));
        assert_eq!(V::Str("1.7".into()).to_int_standard(), Some(1));
        assert_eq!(V::Str("-1.7".into()).to_int_standard(), Some(-1));
        assert_eq!(V::Str("2".into()).to_int_standard(), Some(2));
        assert_eq!(V::Str(" 2".into()).to_int_standard(), None);
        assert_eq!(V::Bool(true).to_int_standard(), None);
        assert_eq!(V::Dec(1e30).to_int_standard(), None);
    }

    #[test]
    fn equality_table() {
        assert_eq!(eq(&V::Int(1), &V::Dec(1.0)), Some(true));
        assert_eq!(eq(&V::Str("1".into()), &V::Int(1)), Some(false));
        assert_eq!(eq(&V::Null, &V::Null), Some(true));
        assert_eq!(eq(&V::Undef, &V::Null), None);
        let a = json!([1, {"a": 2.0}]);
        let b = json!([1.0, {"a": 2}]);
        assert_eq!(eq(&V::Json(&a), &V::Json(&b)), Some(true));
    }

    #[test]
    fn comparison_converts_strings() {
        assert_eq!(
            compare(&V::Str("10".into()), &V::Int(9)),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(&V::Str("a".into()), &V::Int(9)), None);
        assert_eq!(compare(&V::Bool(true), &V::Int(9)), None);
    }
}
