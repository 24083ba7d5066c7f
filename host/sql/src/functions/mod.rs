//! The function table: names, argument counts, refusals, and dispatch.
//!
//! Functions that need the message (`topic()`, `clientid()`, …) are evaluated
//! in [`crate::eval`]; everything here is a pure function of its arguments.

pub mod encoding;
pub mod math;
pub mod string;
pub mod time;
pub mod types;

use crate::value::V;
use regex::Regex;

/// Every function Weir evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Func {
    // math
    Abs,
    Acos,
    Asin,
    Atan,
    Atan2,
    Bitand,
    Bitor,
    Bitxor,
    Bitnot,
    Ceil,
    Chr,
    Cos,
    Cosh,
    Exp,
    Floor,
    Ln,
    Log,
    Mod,
    /// `remainder(a, b)`: AWS's other name for `mod(a, b)`.
    Remainder,
    Nanvl,
    Power,
    Rand,
    Round,
    Sign,
    Sin,
    Sinh,
    Sqrt,
    Tan,
    Tanh,
    Trunc,
    // strings
    Concat,
    Endswith,
    Indexof,
    Length,
    Lower,
    Upper,
    Lpad,
    Rpad,
    Ltrim,
    Rtrim,
    Trim,
    Replace,
    RegexpMatches,
    RegexpReplace,
    RegexpSubstr,
    Startswith,
    Substring,
    Numbytes,
    // types
    IsUndefined,
    IsNull,
    IsString,
    IsNumber,
    IsBoolean,
    IsArray,
    IsObject,
    // encoding and hashing
    Encode,
    Decode,
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    // message and host context
    Topic,
    ClientId,
    Timestamp,
    TraceId,
    NewUuid,
    Principal,
    SourceIp,
    GetMqttProperty,
    GetUserProperties,
    GetThingShadow,
    // time
    ParseTime,
    TimeToEpoch,
    // objects and arrays
    Get,
    GetOrDefault,
    Transform,
    // the statement
    SqlVersion,
}

/// What `sql_version()` returns: the AWS IoT SQL version Weir implements.
pub const SQL_VERSION: &str = "2016-03-23";

/// A function's name and how many arguments it takes.
#[derive(Debug, Clone, Copy)]
pub struct FnSpec {
    pub name: &'static str,
    pub func: Func,
    pub min: usize,
    /// `usize::MAX` for any number.
    pub max: usize,
}

const ANY: usize = usize::MAX;

macro_rules! specs {
    ($($name:literal => $f:ident ($min:expr, $max:expr)),* $(,)?) => {
        /// All functions, by their AWS name (matched case-insensitively).
        pub static FUNCTIONS: &[FnSpec] = &[$(FnSpec { name: $name, func: Func::$f, min: $min, max: $max }),*];
    };
}

specs! {
    "abs" => Abs(1, 1), "acos" => Acos(1, 1), "asin" => Asin(1, 1), "atan" => Atan(1, 1),
    "atan2" => Atan2(2, 2), "bitand" => Bitand(2, 2), "bitor" => Bitor(2, 2),
    "bitxor" => Bitxor(2, 2), "bitnot" => Bitnot(1, 1), "ceil" => Ceil(1, 1), "chr" => Chr(1, 1),
    "cos" => Cos(1, 1), "cosh" => Cosh(1, 1), "exp" => Exp(1, 1), "floor" => Floor(1, 1),
    "ln" => Ln(1, 1), "log" => Log(1, 1), "mod" => Mod(2, 2), "remainder" => Remainder(2, 2),
    "nanvl" => Nanvl(2, 2),
    "power" => Power(2, 2), "rand" => Rand(0, 0), "round" => Round(1, 1), "sign" => Sign(1, 1),
    "sin" => Sin(1, 1), "sinh" => Sinh(1, 1), "sqrt" => Sqrt(1, 1), "tan" => Tan(1, 1),
    "tanh" => Tanh(1, 1), "trunc" => Trunc(2, 2),
    "concat" => Concat(0, ANY), "endswith" => Endswith(2, 2), "indexof" => Indexof(2, 2),
    "length" => Length(1, 1), "lower" => Lower(1, 1), "upper" => Upper(1, 1), "lpad" => Lpad(2, 2),
    "rpad" => Rpad(2, 2), "ltrim" => Ltrim(1, 1), "rtrim" => Rtrim(1, 1), "trim" => Trim(1, 1),
    "replace" => Replace(3, 3), "regexp_matches" => RegexpMatches(2, 2),
    "regexp_replace" => RegexpReplace(3, 3), "regexp_substr" => RegexpSubstr(2, 2),
    "startswith" => Startswith(2, 2), "substring" => Substring(2, 3), "numbytes" => Numbytes(1, 1),
    "isundefined" => IsUndefined(1, 1), "isnull" => IsNull(1, 1), "isstring" => IsString(1, 1),
    "isnumber" => IsNumber(1, 1), "isboolean" => IsBoolean(1, 1), "isarray" => IsArray(1, 1),
    "isobject" => IsObject(1, 1),
    "encode" => Encode(2, 2), "decode" => Decode(2, 6), "md5" => Md5(1, 1), "sha1" => Sha1(1, 1),
    "sha224" => Sha224(1, 1), "sha256" => Sha256(1, 1), "sha384" => Sha384(1, 1),
    "sha512" => Sha512(1, 1),
    "topic" => Topic(0, 1), "clientid" => ClientId(0, 0), "timestamp" => Timestamp(0, 0),
    "traceid" => TraceId(0, 0), "newuuid" => NewUuid(0, 0), "principal" => Principal(0, 0),
    "sourceip" => SourceIp(0, 0),
    "get_mqtt_property" => GetMqttProperty(1, 1), "get_user_properties" => GetUserProperties(1, 1),
    "get_or_default" => GetOrDefault(2, 2),
    "get_thing_shadow" => GetThingShadow(2, 3),
    "parse_time" => ParseTime(2, 3), "time_to_epoch" => TimeToEpoch(2, 2),
    "get" => Get(2, 2), "transform" => Transform(3, 3),
    "sql_version" => SqlVersion(0, 0),
}

/// Find a function by name, ignoring case.
pub fn find(name: &str) -> Option<&'static FnSpec> {
    FUNCTIONS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Functions of AWS IoT SQL that Weir refuses at check time, with the reason.
pub fn refusal(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let service = match lower.as_str() {
        "aws_lambda" => "AWS Lambda",
        "get_dynamodb" => "Amazon DynamoDB",
        "machinelearning_predict" => "Amazon Machine Learning",
        "get_secret" => "AWS Secrets Manager",
        "get_registry_data" => "the AWS IoT registry",
        "sqs" | "kinesis" => "an AWS service",
        "accountid" => {
            return Some(
                "function accountid names an AWS account, which Weir does not have".to_string(),
            )
        }
        "md2" => return Some(format!("function {lower} is not supported by Weir yet")),
        _ => return None,
    };
    Some(format!(
        "function {lower} calls {service}, which Weir does not provide"
    ))
}

/// Evaluate a pure function. `re` is the pre-compiled regular expression when
/// the pattern argument was a literal.
pub fn call<'a>(f: Func, args: &mut [V<'a>], re: Option<&Regex>) -> V<'a> {
    use Func::*;
    match f {
        Abs | Acos | Asin | Atan | Atan2 | Bitand | Bitor | Bitxor | Bitnot | Ceil | Chr | Cos
        | Cosh | Exp | Floor | Ln | Log | Mod | Remainder | Nanvl | Power | Rand | Round | Sign
        | Sin | Sinh | Sqrt | Tan | Tanh | Trunc => math::call(f, args),
        Concat | Endswith | Indexof | Length | Lower | Upper | Lpad | Rpad | Ltrim | Rtrim
        | Trim | Replace | RegexpMatches | RegexpReplace | RegexpSubstr | Startswith
        | Substring | Numbytes => string::call(f, args, re),
        IsUndefined | IsNull | IsString | IsNumber | IsBoolean | IsArray | IsObject | Get
        | Transform => types::call(f, args),
        Encode | Decode | Md5 | Sha1 | Sha224 | Sha256 | Sha384 | Sha512 => encoding::call(f, args),
        ParseTime | TimeToEpoch => time::call(f, args),
        NewUuid => V::Str(math::new_uuid().into()),
        // The only SQL version Weir speaks.
        SqlVersion => V::Str(SQL_VERSION.into()),
        // `expression`, unless it is Undefined or Null: then `default`.
        GetOrDefault => match args {
            [V::Undef | V::Null, pick] | [pick, _] => std::mem::replace(pick, V::Undef),
            _ => V::Undef,
        },
        // Context functions are handled by the evaluator.
        Topic | ClientId | Timestamp | TraceId | Principal | SourceIp | GetMqttProperty
        | GetUserProperties | GetThingShadow => V::Undef,
    }
}

/// Take argument `i` (Undefined when missing).
pub(crate) fn arg<'x, 'a>(args: &'x [V<'a>], i: usize) -> &'x V<'a> {
    const U: &V<'static> = &V::Undef;
    args.get(i).unwrap_or(U)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lowercase() {
        for (i, a) in FUNCTIONS.iter().enumerate() {
            assert_eq!(a.name, a.name.to_ascii_lowercase());
            for b in &FUNCTIONS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
        assert!(find("isUndefined").is_some());
        assert!(refusal("aws_lambda").unwrap().contains("AWS Lambda"));
    }
}
