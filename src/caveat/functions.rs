//! Operators and functions on runtime values. Every operation checks its operand kinds
//! (values of type `any` are only known here) and reports failures as messages; overflow,
//! division by zero and malformed conversions are errors, never panics or wrap-around.

use std::sync::Arc;

use chrono::{Datelike, FixedOffset, Timelike};
use regex::{Regex, RegexBuilder};

use super::ast::BinaryOp;
use super::program::{Func, TimeField};
use super::value::{
    IpNet, KeyRef, MapValue, Value, add_durations, add_to_timestamp, check_timestamp, compare,
    format_double, format_duration, format_timestamp, negate_duration, parse_duration, parse_ip,
    parse_timestamp, timestamp_difference, values_equal,
};

/// Compiled regular expressions may not exceed this size, so a hostile pattern cannot
/// exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a CEL (RE2-syntax) regular expression.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("").trim();
            format!("invalid regular expression `{pattern}`: {last}")
        })
}

fn no_overload(op: &str, a: &Value, b: &Value) -> String {
    format!(
        "operator `{op}` cannot be applied to {} and {}",
        a.type_name(),
        b.type_name()
    )
}

const INT_OVERFLOW: &str = "integer overflow";
const UINT_OVERFLOW: &str = "unsigned integer overflow";

/// `-x`.
pub(crate) fn negate(v: &Value) -> Result<Value, String> {
    match v {
        Value::Int(i) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| INT_OVERFLOW.into()),
        Value::Double(d) => Ok(Value::Double(-d)),
        Value::Duration(d) => Ok(Value::Duration(negate_duration(*d))),
        other => Err(format!("operator `-` cannot negate {}", other.type_name())),
    }
}

/// Every binary operator except `&&` and `||`.
pub(crate) fn binary(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, String> {
    use Value::*;
    let r = match op {
        BinaryOp::Eq => Bool(values_equal(a, b)),
        BinaryOp::Ne => Bool(!values_equal(a, b)),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let ord = compare(a, b).map_err(|_| no_overload(op.symbol(), a, b))?;
            Bool(ord.is_some_and(|o| match op {
                BinaryOp::Lt => o.is_lt(),
                BinaryOp::Le => o.is_le(),
                BinaryOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        BinaryOp::In => match b {
            List(items) => Bool(items.iter().any(|x| values_equal(a, x))),
            Map(m) => Bool(KeyRef::from_value(a).is_some_and(|k| m.contains_key(&k))),
            _ => {
                return Err(format!(
                    "operator `in` needs a list or map on the right, found {}",
                    b.type_name()
                ));
            }
        },
        BinaryOp::Add => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_add(*y).ok_or(INT_OVERFLOW)?),
            (Uint(x), Uint(y)) => Uint(x.checked_add(*y).ok_or(UINT_OVERFLOW)?),
            (Double(x), Double(y)) => Double(x + y),
            (String(x), String(y)) => {
                let mut s = std::string::String::with_capacity(x.len() + y.len());
                s.push_str(x);
                s.push_str(y);
                String(Arc::from(s))
            }
            (Bytes(x), Bytes(y)) => Bytes(x.iter().chain(y.iter()).copied().collect()),
            (List(x), List(y)) => List(x.iter().chain(y.iter()).cloned().collect()),
            (Timestamp(t), Duration(d)) | (Duration(d), Timestamp(t)) => {
                Timestamp(add_to_timestamp(*t, *d)?)
            }
            (Duration(x), Duration(y)) => Duration(add_durations(*x, *y)?),
            _ => return Err(no_overload("+", a, b)),
        },
        BinaryOp::Sub => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_sub(*y).ok_or(INT_OVERFLOW)?),
            (Uint(x), Uint(y)) => Uint(x.checked_sub(*y).ok_or(UINT_OVERFLOW)?),
            (Double(x), Double(y)) => Double(x - y),
            (Timestamp(x), Timestamp(y)) => Duration(timestamp_difference(*x, *y)?),
            (Timestamp(t), Duration(d)) => Timestamp(add_to_timestamp(*t, negate_duration(*d))?),
            (Duration(x), Duration(y)) => Duration(add_durations(*x, negate_duration(*y))?),
            _ => return Err(no_overload("-", a, b)),
        },
        BinaryOp::Mul => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_mul(*y).ok_or(INT_OVERFLOW)?),
            (Uint(x), Uint(y)) => Uint(x.checked_mul(*y).ok_or(UINT_OVERFLOW)?),
            (Double(x), Double(y)) => Double(x * y),
            _ => return Err(no_overload("*", a, b)),
        },
        BinaryOp::Div => match (a, b) {
            (Int(_), Int(0)) | (Uint(_), Uint(0)) => return Err("division by zero".into()),
            (Int(x), Int(y)) => Int(x.checked_div(*y).ok_or(INT_OVERFLOW)?),
            (Uint(x), Uint(y)) => Uint(x / y),
            (Double(x), Double(y)) => Double(x / y),
            _ => return Err(no_overload("/", a, b)),
        },
        BinaryOp::Rem => match (a, b) {
            (Int(_), Int(0)) | (Uint(_), Uint(0)) => return Err("modulus by zero".into()),
            (Int(x), Int(y)) => Int(x.checked_rem(*y).ok_or(INT_OVERFLOW)?),
            (Uint(x), Uint(y)) => Uint(x % y),
            _ => return Err(no_overload("%", a, b)),
        },
    };
    Ok(r)
}

/// Whether every entry of `a` is in `b`: nested maps recursively, other values by equality.
fn is_subtree_of(a: &MapValue, b: &MapValue) -> bool {
    a.iter().all(|(k, va)| match (va, b.get(&k.as_ref())) {
        (Value::Map(sub_a), Some(Value::Map(sub_b))) => is_subtree_of(sub_a, sub_b),
        (_, Some(vb)) => values_equal(va, vb),
        (_, None) => false,
    })
}

fn wrong_args(name: &str, args: &[Value]) -> String {
    let kinds: Vec<&str> = args.iter().map(Value::type_name).collect();
    format!("no overload of `{name}` for ({})", kinds.join(", "))
}

fn int_from_double(d: f64) -> Option<i64> {
    // [-2^63, 2^63): every double in the range truncates to a representable int.
    (d.is_finite() && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d))
        .then(|| d.trunc() as i64)
}

fn uint_from_double(d: f64) -> Option<u64> {
    (d.is_finite() && d > -1.0 && d < 18_446_744_073_709_551_616.0).then(|| d.trunc() as u64)
}

/// The string form CEL's `string()` gives a value.
pub(crate) fn to_cel_string(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::String(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => std::str::from_utf8(b)
            .map_err(|_| "bytes are not valid UTF-8".to_string())?
            .to_string(),
        Value::Timestamp(t) => format_timestamp(*t),
        Value::Duration(d) => format_duration(*d),
        Value::Ip(ip) => ip.to_string(),
        other => return Err(format!("cannot convert {} to string", other.type_name())),
    })
}

fn parse_time_zone(tz: &str) -> Result<FixedOffset, String> {
    let bad =
        || format!("unsupported time zone `{tz}` (use `UTC` or a fixed offset like `+05:30`)");
    if tz.eq_ignore_ascii_case("utc") || tz == "Z" {
        return FixedOffset::east_opt(0).ok_or_else(bad);
    }
    let (sign, rest) = match tz.as_bytes().first() {
        Some(b'+') => (1, &tz[1..]),
        Some(b'-') => (-1, &tz[1..]),
        _ => (1, tz),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let valid = |s: &str| s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit());
    if !valid(h) || !valid(m) {
        return Err(bad());
    }
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

fn time_get(field: TimeField, args: &[Value]) -> Result<Value, String> {
    let name = match field {
        TimeField::FullYear => "getFullYear",
        TimeField::Month => "getMonth",
        TimeField::Date => "getDate",
        TimeField::DayOfMonth => "getDayOfMonth",
        TimeField::DayOfWeek => "getDayOfWeek",
        TimeField::DayOfYear => "getDayOfYear",
        TimeField::Hours => "getHours",
        TimeField::Minutes => "getMinutes",
        TimeField::Seconds => "getSeconds",
        TimeField::Milliseconds => "getMilliseconds",
    };
    match args {
        [Value::Duration(d)] if field.applies_to_duration() => Ok(Value::Int(match field {
            TimeField::Hours => d.num_hours(),
            TimeField::Minutes => d.num_minutes(),
            TimeField::Seconds => d.num_seconds(),
            _ => d.num_milliseconds(),
        })),
        [Value::Timestamp(t)] | [Value::Timestamp(t), Value::String(_)] => {
            let offset = match args.get(1) {
                Some(Value::String(tz)) => parse_time_zone(tz)?,
                _ => FixedOffset::east_opt(0).ok_or("invalid time zone")?,
            };
            let local = t.with_timezone(&offset);
            let v = match field {
                TimeField::FullYear => local.year(),
                TimeField::Month => local.month0() as i32,
                TimeField::Date => local.day() as i32,
                TimeField::DayOfMonth => local.day0() as i32,
                TimeField::DayOfWeek => local.weekday().num_days_from_sunday() as i32,
                TimeField::DayOfYear => local.ordinal0() as i32,
                TimeField::Hours => local.hour() as i32,
                TimeField::Minutes => local.minute() as i32,
                TimeField::Seconds => local.second() as i32,
                TimeField::Milliseconds => (local.nanosecond() % 1_000_000_000 / 1_000_000) as i32,
            };
            Ok(Value::Int(i64::from(v)))
        }
        _ => Err(wrong_args(name, args)),
    }
}

/// Calls `func`; a method's receiver is `args[0]`.
pub(crate) fn call(func: &Func, args: &[Value]) -> Result<Value, String> {
    use Value::*;
    let r = match (func, args) {
        (Func::Size, [v]) => {
            let n = match v {
                String(s) => s.chars().count(),
                Bytes(b) => b.len(),
                List(l) => l.len(),
                Map(m) => m.len(),
                _ => return Err(wrong_args("size", args)),
            };
            Int(i64::try_from(n).map_err(|_| INT_OVERFLOW)?)
        }
        (Func::Contains, [String(s), String(sub)]) => Bool(s.contains(&**sub)),
        (Func::StartsWith, [String(s), String(p)]) => Bool(s.starts_with(&**p)),
        (Func::EndsWith, [String(s), String(p)]) => Bool(s.ends_with(&**p)),
        (Func::Matches, [String(s), String(p)]) => Bool(compile_regex(p)?.is_match(s)),
        (Func::MatchesRegex(re), [String(s)]) => Bool(re.is_match(s)),
        (Func::InCidr, [Ip(ip), String(cidr)]) => Bool(IpNet::parse(cidr)?.contains(ip)),
        (Func::InCidrNet(net), [Ip(ip)]) => Bool(net.contains(ip)),
        (Func::IsSubtreeOf, [Map(a), Map(b)]) => Bool(is_subtree_of(a, b)),
        (Func::ToInt, [v]) => Int(match v {
            Int(i) => *i,
            Uint(u) => i64::try_from(*u).map_err(|_| format!("uint {u} is out of int range"))?,
            Double(d) => int_from_double(*d)
                .ok_or_else(|| format!("double {} is out of int range", format_double(*d)))?,
            String(s) => s
                .parse()
                .map_err(|_| format!("cannot convert string `{s}` to int"))?,
            Timestamp(t) => t.timestamp(),
            _ => return Err(wrong_args("int", args)),
        }),
        (Func::ToUint, [v]) => Uint(match v {
            Uint(u) => *u,
            Int(i) => u64::try_from(*i).map_err(|_| format!("int {i} is out of uint range"))?,
            Double(d) => uint_from_double(*d)
                .ok_or_else(|| format!("double {} is out of uint range", format_double(*d)))?,
            String(s) => s
                .parse()
                .map_err(|_| format!("cannot convert string `{s}` to uint"))?,
            _ => return Err(wrong_args("uint", args)),
        }),
        (Func::ToDouble, [v]) => Double(match v {
            Double(d) => *d,
            Int(i) => *i as f64,
            Uint(u) => *u as f64,
            String(s) => s
                .parse()
                .map_err(|_| format!("cannot convert string `{s}` to double"))?,
            _ => return Err(wrong_args("double", args)),
        }),
        (Func::ToString, [v]) => match v {
            String(_) => v.clone(),
            _ => String(Arc::from(to_cel_string(v)?)),
        },
        (Func::ToBool, [v]) => Bool(match v {
            Bool(b) => *b,
            String(s) => match &**s {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                _ => return Err(format!("cannot convert string `{s}` to bool")),
            },
            _ => return Err(wrong_args("bool", args)),
        }),
        (Func::ToBytes, [v]) => match v {
            Bytes(_) => v.clone(),
            String(s) => Bytes(Arc::from(s.as_bytes())),
            _ => return Err(wrong_args("bytes", args)),
        },
        (Func::ToTimestamp, [v]) => match v {
            Timestamp(_) => v.clone(),
            String(s) => Timestamp(parse_timestamp(s)?),
            Int(secs) => Timestamp(
                chrono::DateTime::from_timestamp(*secs, 0)
                    .ok_or("timestamp out of range (years 0001 to 9999)")
                    .map_err(str::to_string)
                    .and_then(check_timestamp)?,
            ),
            _ => return Err(wrong_args("timestamp", args)),
        },
        (Func::ToDuration, [v]) => match v {
            Duration(_) => v.clone(),
            String(s) => Duration(parse_duration(s)?),
            _ => return Err(wrong_args("duration", args)),
        },
        (Func::ToIpAddress, [v]) => match v {
            Ip(_) => v.clone(),
            String(s) => Ip(parse_ip(s)?),
            _ => return Err(wrong_args("ipaddress", args)),
        },
        (Func::TimeGet(field), _) => return time_get(*field, args),
        (func, _) => return Err(wrong_args(func_name(func), args)),
    };
    Ok(r)
}

fn func_name(func: &Func) -> &'static str {
    match func {
        Func::Size => "size",
        Func::Contains => "contains",
        Func::StartsWith => "startsWith",
        Func::EndsWith => "endsWith",
        Func::Matches | Func::MatchesRegex(_) => "matches",
        Func::InCidr | Func::InCidrNet(_) => "in_cidr",
        Func::IsSubtreeOf => "isSubtreeOf",
        Func::ToInt => "int",
        Func::ToUint => "uint",
        Func::ToDouble => "double",
        Func::ToString => "string",
        Func::ToBool => "bool",
        Func::ToBytes => "bytes",
        Func::ToTimestamp => "timestamp",
        Func::ToDuration => "duration",
        Func::ToIpAddress => "ipaddress",
        Func::TimeGet(_) => "a time accessor",
    }
}
