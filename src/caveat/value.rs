//! Runtime values of CEL and the operations on them that do not depend on the syntax tree:
//! heterogeneous equality, ordering, string conversion, and the text formats of durations,
//! timestamps, IP networks and base64 bytes.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use indexmap::IndexMap;

/// A CEL value. Cloning is cheap: strings, bytes, lists and maps are reference-counted.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    Duration(TimeDelta),
    Timestamp(DateTime<Utc>),
    Ip(IpAddr),
    List(Arc<[Value]>),
    Map(Arc<MapValue>),
}

/// Map values keep insertion order, so comprehensions over maps are deterministic.
pub(crate) type MapValue = IndexMap<Key, Value>;

/// A map key. Numeric keys compare by value across int and uint, as CEL requires
/// (`{1: 'a'}[1u]` finds the entry).
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Bool(bool),
    Int(i64),
    Uint(u64),
    String(Arc<str>),
}

/// A borrowed view of a key, to look up maps without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyRef<'a> {
    Bool(bool),
    Num(i128),
    Str(&'a str),
}

impl Key {
    pub(crate) fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Bool(b) => KeyRef::Bool(*b),
            Key::Int(i) => KeyRef::Num(i128::from(*i)),
            Key::Uint(u) => KeyRef::Num(i128::from(*u)),
            Key::String(s) => KeyRef::Str(s),
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Uint(u) => Value::Uint(*u),
            Key::String(s) => Value::String(s.clone()),
        }
    }

    /// Converts a value to a key for a map literal; only int, uint, bool and string qualify.
    pub(crate) fn from_value(v: &Value) -> Result<Key, String> {
        match v {
            Value::Bool(b) => Ok(Key::Bool(*b)),
            Value::Int(i) => Ok(Key::Int(*i)),
            Value::Uint(u) => Ok(Key::Uint(*u)),
            Value::String(s) => Ok(Key::String(s.clone())),
            other => Err(format!(
                "a map key must be int, uint, bool or string, found {}",
                other.type_name()
            )),
        }
    }
}

impl KeyRef<'_> {
    fn hash_into<H: Hasher>(&self, state: &mut H) {
        match self {
            KeyRef::Bool(b) => {
                state.write_u8(0);
                b.hash(state);
            }
            KeyRef::Num(n) => {
                state.write_u8(1);
                n.hash(state);
            }
            KeyRef::Str(s) => {
                state.write_u8(2);
                s.hash(state);
            }
        }
    }

    fn same(&self, other: &KeyRef<'_>) -> bool {
        match (self, other) {
            (KeyRef::Bool(a), KeyRef::Bool(b)) => a == b,
            (KeyRef::Num(a), KeyRef::Num(b)) => a == b,
            (KeyRef::Str(a), KeyRef::Str(b)) => a == b,
            _ => false,
        }
    }

    /// The key a value denotes in a lookup: doubles with an integral value find int/uint keys.
    pub(crate) fn from_value(v: &Value) -> Option<KeyRef<'_>> {
        match v {
            Value::Bool(b) => Some(KeyRef::Bool(*b)),
            Value::Int(i) => Some(KeyRef::Num(i128::from(*i))),
            Value::Uint(u) => Some(KeyRef::Num(i128::from(*u))),
            Value::Double(d) if d.fract() == 0.0 && d.abs() < 2f64.powi(64) => {
                Some(KeyRef::Num(*d as i128))
            }
            Value::String(s) => Some(KeyRef::Str(s)),
            _ => None,
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash_into(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref().same(&other.as_ref())
    }
}

impl Eq for Key {}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash_into(state);
    }
}

impl indexmap::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.same(&key.as_ref())
    }
}

impl Value {
    pub(crate) fn string(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    /// The CEL name of the value's type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Duration(_) => "duration",
            Value::Timestamp(_) => "timestamp",
            Value::Ip(_) => "ipaddress",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

fn cmp_int_uint(i: i64, u: u64) -> Ordering {
    if i < 0 {
        Ordering::Less
    } else {
        (i as u64).cmp(&u)
    }
}

/// 2^63 and 2^64 as doubles (both exactly representable).
const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_64: f64 = 18_446_744_073_709_551_616.0;

/// Exact comparison of an int with a double (no rounding of large ints).
fn cmp_int_double(i: i64, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    if d >= TWO_63 {
        return Some(Ordering::Less);
    }
    if d < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = d.trunc();
    // |t| <= 2^63 and t != 2^63, so the cast is exact.
    match i.cmp(&(t as i64)) {
        Ordering::Equal => (0.0).partial_cmp(&(d - t)),
        other => Some(other),
    }
}

fn cmp_uint_double(u: u64, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    if d < 0.0 {
        return Some(Ordering::Greater);
    }
    if d >= TWO_64 {
        return Some(Ordering::Less);
    }
    let t = d.trunc();
    match u.cmp(&(t as u64)) {
        Ordering::Equal => (0.0).partial_cmp(&(d - t)),
        other => Some(other),
    }
}

fn numeric_cmp(a: &Value, b: &Value) -> Option<Option<Ordering>> {
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Uint(x), Value::Uint(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Uint(y)) => Some(cmp_int_uint(*x, *y)),
        (Value::Uint(x), Value::Int(y)) => Some(cmp_int_uint(*y, *x).reverse()),
        (Value::Int(x), Value::Double(y)) => cmp_int_double(*x, *y),
        (Value::Double(x), Value::Int(y)) => cmp_int_double(*y, *x).map(Ordering::reverse),
        (Value::Uint(x), Value::Double(y)) => cmp_uint_double(*x, *y),
        (Value::Double(x), Value::Uint(y)) => cmp_uint_double(*y, *x).map(Ordering::reverse),
        _ => return None,
    })
}

/// CEL equality: numbers compare by value across int, uint and double; values of different
/// kinds are unequal; NaN equals nothing.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    if let Some(ord) = numeric_cmp(a, b) {
        return ord == Some(Ordering::Equal);
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Duration(x), Value::Duration(y)) => x == y,
        (Value::Timestamp(x), Value::Timestamp(y)) => x == y,
        (Value::Ip(x), Value::Ip(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| values_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(&k.as_ref()).is_some_and(|w| values_equal(v, w)))
        }
        _ => false,
    }
}

/// CEL ordering. `Err` when the two kinds cannot be ordered; `Ok(None)` for NaN operands.
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, String> {
    if let Some(ord) = numeric_cmp(a, b) {
        return Ok(ord);
    }
    Ok(Some(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        // UTF-8 byte order is code point order.
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Duration(x), Value::Duration(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        _ => {
            return Err(format!(
                "cannot order {} and {}",
                a.type_name(),
                b.type_name()
            ));
        }
    }))
}

/// Formats a double as CEL (following Go's `%g`) does: shortest round-trip digits,
/// exponent form below 1e-4 and from 1e6.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = format!("{d:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return d.to_string();
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if d != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        d.to_string()
    }
}

/// Durations may span at most ±10000 years, as in `google.protobuf.Duration`.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

fn total_nanos(d: TimeDelta) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

fn delta_from_nanos(n: i128) -> Option<TimeDelta> {
    let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
    let nanos = u32::try_from(n.rem_euclid(1_000_000_000)).ok()?;
    TimeDelta::new(secs, nanos)
}

/// Checks the CEL duration range.
pub(crate) fn check_duration(d: TimeDelta) -> Result<TimeDelta, String> {
    if d.num_seconds().abs() > MAX_DURATION_SECONDS {
        Err("duration out of range (more than 10000 years)".into())
    } else {
        Ok(d)
    }
}

/// Timestamps must lie in years 0001 to 9999, as in `google.protobuf.Timestamp`.
pub(crate) fn check_timestamp(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if (MIN..=MAX).contains(&t.timestamp()) {
        Ok(t)
    } else {
        Err("timestamp out of range (years 0001 to 9999)".into())
    }
}

/// Parses a duration in Go's syntax: an optional sign and a sequence of decimal numbers with
/// units `h`, `m`, `s`, `ms`, `us` (or `µs`), `ns`, e.g. `1h30m`, `1.5s`, `-10ms`, `0`.
pub(crate) fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let bad = |why: &str| format!("invalid duration `{text}`: {why}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(TimeDelta::zero());
    }
    if rest.is_empty() {
        return Err(bad("expected a number and a unit, like `1h30m`"));
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad("expected a number"));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("missing unit (use h, m, s, ms, us or ns)")),
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        rest = &rest[unit_len..];
        // 24 digits of hours already exceed the range; refuse before overflowing i128.
        if int_part.len() > 24 {
            return Err(bad("out of range"));
        }
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad("out of range"))?
        };
        let mut value = whole * unit;
        if !frac_part.is_empty() {
            let digits = &frac_part[..frac_part.len().min(18)];
            let scale = 10i128.pow(digits.len() as u32);
            let frac: i128 = digits.parse().map_err(|_| bad("invalid fraction"))?;
            value += frac * unit / scale;
        }
        total += value;
        if total > i128::from(MAX_DURATION_SECONDS) * 1_000_000_000 {
            return Err(bad("out of range (more than 10000 years)"));
        }
    }
    if negative {
        total = -total;
    }
    delta_from_nanos(total).ok_or_else(|| bad("out of range"))
}

/// Formats a duration as CEL does: seconds with up to nine fractional digits, e.g. `5400s`,
/// `1.5s`.
pub(crate) fn format_duration(d: TimeDelta) -> String {
    let n = total_nanos(d);
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    let n = n.unsigned_abs();
    let secs = n / 1_000_000_000;
    let frac = n % 1_000_000_000;
    let _ = write!(out, "{secs}");
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05Z`, `2024-01-02T03:04:05.5+01:00`).
pub(crate) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("invalid RFC 3339 timestamp `{text}`: {e}"))?;
    check_timestamp(parsed.with_timezone(&Utc))
}

/// Formats a timestamp in RFC 3339 with `Z` and only the fractional digits that are needed.
pub(crate) fn format_timestamp(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_nanos() == 0 {
        return t.to_rfc3339_opts(SecondsFormat::Secs, true);
    }
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let body = s.trim_end_matches('Z').trim_end_matches('0');
    format!("{body}Z")
}

/// Adds a duration to a timestamp, within the CEL ranges.
pub(crate) fn add_to_timestamp(t: DateTime<Utc>, d: TimeDelta) -> Result<DateTime<Utc>, String> {
    t.checked_add_signed(d)
        .ok_or_else(|| "timestamp out of range (years 0001 to 9999)".to_string())
        .and_then(check_timestamp)
}

/// Adds two durations, within the CEL range.
pub(crate) fn add_durations(a: TimeDelta, b: TimeDelta) -> Result<TimeDelta, String> {
    a.checked_add(&b)
        .ok_or_else(|| "duration out of range".to_string())
        .and_then(check_duration)
}

/// Negates a duration (never overflows within the CEL range).
pub(crate) fn negate_duration(d: TimeDelta) -> TimeDelta {
    -d
}

/// `a - b` for timestamps.
pub(crate) fn timestamp_difference(
    a: DateTime<Utc>,
    b: DateTime<Utc>,
) -> Result<TimeDelta, String> {
    check_duration(a.signed_duration_since(b))
}

/// An IP network in CIDR notation, e.g. `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub(crate) fn parse(text: &str) -> Result<IpNet, String> {
        let bad = |why: &str| format!("invalid CIDR `{text}`: {why}");
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| bad("expected an address, `/` and a prefix length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("invalid IP address"))?;
        if prefix.is_empty() || !prefix.bytes().all(|c| c.is_ascii_digit()) || prefix.len() > 3 {
            return Err(bad("invalid prefix length"));
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad("invalid prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad(&format!("prefix length must be at most {max}")));
        }
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in the network. Addresses of the other family never match (an
    /// IPv4-mapped IPv6 address is not in an IPv4 network), as in Go's `netip`.
    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u32::from(net) & mask) == (u32::from(*ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(net) & mask) == (u128::from(*ip) & mask)
            }
            _ => false,
        }
    }
}

/// Parses an IPv4 or IPv6 address (no zone, no prefix).
pub(crate) fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("invalid IP address `{text}`"))
}

/// Decodes base64 in the standard or URL-safe alphabet, with or without padding.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let bad = |why: &str| format!("invalid base64: {why}");
    let unpadded = text.trim_end_matches('=');
    let padding = text.len() - unpadded.len();
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) {
        return Err(bad("wrong padding"));
    }
    if unpadded.len() % 4 == 1 {
        return Err(bad("truncated input"));
    }
    let mut out = Vec::with_capacity(unpadded.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in unpadded.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(bad(&format!("unexpected character `{}`", c as char))),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_equality_and_order_are_exact() {
        assert!(values_equal(&Value::Int(1), &Value::Uint(1)));
        assert!(values_equal(&Value::Int(1), &Value::Double(1.0)));
        assert!(!values_equal(&Value::Int(-1), &Value::Uint(u64::MAX)));
        assert!(!values_equal(
            &Value::Double(f64::NAN),
            &Value::Double(f64::NAN)
        ));
        // 2^53 + 1 is not representable as a double: no false equality through rounding.
        let big = (1i64 << 53) + 1;
        assert!(!values_equal(
            &Value::Int(big),
            &Value::Double((1u64 << 53) as f64)
        ));
        assert_eq!(
            compare(&Value::Int(big), &Value::Double((1u64 << 53) as f64)),
            Ok(Some(Ordering::Greater))
        );
        assert_eq!(
            compare(&Value::Int(i64::MAX), &Value::Double(TWO_63)),
            Ok(Some(Ordering::Less))
        );
        assert_eq!(
            compare(&Value::Uint(3), &Value::Double(2.5)),
            Ok(Some(Ordering::Greater))
        );
        assert_eq!(
            compare(&Value::Int(-3), &Value::Double(-2.5)),
            Ok(Some(Ordering::Less))
        );
        assert_eq!(compare(&Value::Double(f64::NAN), &Value::Int(1)), Ok(None));
        assert!(compare(&Value::Int(1), &Value::string("a")).is_err());
        assert!(!values_equal(&Value::Int(1), &Value::string("1")));
    }

    #[test]
    fn maps_find_keys_across_numeric_kinds() {
        let mut m = MapValue::new();
        m.insert(Key::Int(1), Value::string("one"));
        m.insert(Key::String(Arc::from("k")), Value::Bool(true));
        assert!(m.get(&KeyRef::Num(1)).is_some());
        assert!(m.contains_key(&Key::Uint(1)));
        assert!(m.get(&KeyRef::Str("k")).is_some());
        assert!(
            m.get(&KeyRef::from_value(&Value::Double(1.0)).unwrap())
                .is_some()
        );
        assert!(KeyRef::from_value(&Value::Double(1.5)).is_none());
    }

    #[test]
    fn doubles_format_like_cel() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(100000.0), "100000");
        assert_eq!(format_double(1000000.0), "1e+06");
        assert_eq!(format_double(1234567.0), "1.234567e+06");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1e-05");
        assert_eq!(format_double(-2.5e-300), "-2.5e-300");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_double(f64::INFINITY), "+Inf");
    }

    #[test]
    fn durations_parse_and_format() {
        let d = |s: &str| parse_duration(s).unwrap();
        assert_eq!(d("1h30m"), TimeDelta::minutes(90));
        assert_eq!(d("10s"), TimeDelta::seconds(10));
        assert_eq!(d("1.5h"), TimeDelta::minutes(90));
        assert_eq!(d("-1m"), TimeDelta::minutes(-1));
        assert_eq!(d("300ms"), TimeDelta::milliseconds(300));
        assert_eq!(d("2us"), TimeDelta::microseconds(2));
        assert_eq!(d("2µs"), TimeDelta::microseconds(2));
        assert_eq!(d("7ns"), TimeDelta::nanoseconds(7));
        assert_eq!(d(".5s"), TimeDelta::milliseconds(500));
        assert_eq!(d("0"), TimeDelta::zero());
        assert_eq!(d("1h1m1s1ms"), TimeDelta::milliseconds(3_661_001));
        for bad in [
            "",
            "1",
            "1x",
            "h",
            "-",
            "1.s.",
            "99999999999999999999999999h",
            "100000000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(d("1h30m")), "5400s");
        assert_eq!(format_duration(d("1.5s")), "1.5s");
        assert_eq!(format_duration(d("-1ns")), "-0.000000001s");
        assert_eq!(format_duration(TimeDelta::zero()), "0s");
    }

    #[test]
    fn timestamps_parse_format_and_range() {
        let t = parse_timestamp("2024-02-29T12:00:00.250+01:00").unwrap();
        assert_eq!(format_timestamp(t), "2024-02-29T11:00:00.25Z");
        assert_eq!(
            format_timestamp(parse_timestamp("2024-01-01T00:00:00Z").unwrap()),
            "2024-01-01T00:00:00Z"
        );
        assert!(parse_timestamp("2024-01-01").is_err());
        assert!(parse_timestamp("0000-12-31T23:59:59Z").is_err());
        let max = parse_timestamp("9999-12-31T23:59:59Z").unwrap();
        assert!(add_to_timestamp(max, TimeDelta::seconds(1)).is_err());
        assert!(add_to_timestamp(max, TimeDelta::seconds(-1)).is_ok());
    }

    #[test]
    fn cidr_membership() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(&parse_ip("10.255.1.2").unwrap()));
        assert!(!net.contains(&parse_ip("11.0.0.1").unwrap()));
        assert!(!net.contains(&parse_ip("::ffff:10.0.0.1").unwrap()));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(&parse_ip("192.168.1.1").unwrap()));
        let host = IpNet::parse("192.168.1.7/32").unwrap();
        assert!(host.contains(&parse_ip("192.168.1.7").unwrap()));
        assert!(!host.contains(&parse_ip("192.168.1.8").unwrap()));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(&parse_ip("2001:db8:1::1").unwrap()));
        assert!(!v6.contains(&parse_ip("2001:db9::1").unwrap()));
        assert!(!v6.contains(&parse_ip("10.0.0.1").unwrap()));
        assert!(
            IpNet::parse("::/0")
                .unwrap()
                .contains(&parse_ip("::1").unwrap())
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_variants() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("aGVsbG8==").is_err());
        assert!(decode_base64("aGV*").is_err());
    }
}
