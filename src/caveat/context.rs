//! Conversion of JSON context values (a `google.protobuf.Struct` on the wire) to CEL values
//! of the declared parameter types.

use std::sync::Arc;

use serde_json::Value as Json;

use super::CaveatType;
use super::value::{
    Key, MapValue, Value, decode_base64, parse_duration, parse_ip, parse_timestamp,
};

fn describe(j: &Json) -> String {
    match j {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("the bool `{b}`"),
        Json::Number(n) => format!("the number `{n}`"),
        Json::String(s) => {
            let mut shown: String = s.chars().take(60).collect();
            if shown.len() < s.len() {
                shown.push_str("...");
            }
            format!("the string `{shown}`")
        }
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn found(j: &Json) -> String {
    format!("found {}", describe(j))
}

/// Converts `json` to a value of type `ty`; the error is a detail message (the caller adds
/// the parameter name and expected type).
pub(crate) fn convert(json: &Json, ty: &CaveatType) -> Result<Value, String> {
    match ty {
        CaveatType::Int => match json {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Value::Int(i))
                } else if n.is_u64() {
                    Err(format!("{n} is out of range for int"))
                } else {
                    let d = n.as_f64().unwrap_or(f64::NAN);
                    if d.fract() != 0.0 || !d.is_finite() {
                        Err(format!("{n} is not a whole number"))
                    } else if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
                        .contains(&d)
                    {
                        Ok(Value::Int(d as i64))
                    } else {
                        Err(format!("{n} is out of range for int"))
                    }
                }
            }
            other => Err(found(other)),
        },
        CaveatType::Uint => match json {
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Ok(Value::Uint(u))
                } else if n.is_i64() {
                    Err(format!("{n} is negative"))
                } else {
                    let d = n.as_f64().unwrap_or(f64::NAN);
                    if d.fract() != 0.0 || !d.is_finite() {
                        Err(format!("{n} is not a whole number"))
                    } else if (0.0..18_446_744_073_709_551_616.0).contains(&d) {
                        Ok(Value::Uint(d as u64))
                    } else {
                        Err(format!("{n} is out of range for uint"))
                    }
                }
            }
            other => Err(found(other)),
        },
        CaveatType::Double => match json {
            Json::Number(n) => n
                .as_f64()
                .map(Value::Double)
                .ok_or_else(|| format!("{n} is not representable as a double")),
            other => Err(found(other)),
        },
        CaveatType::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            other => Err(found(other)),
        },
        CaveatType::String => match json {
            Json::String(s) => Ok(Value::string(s)),
            other => Err(found(other)),
        },
        CaveatType::Bytes => match json {
            Json::String(s) => decode_base64(s).map(|b| Value::Bytes(Arc::from(b))),
            other => Err(format!(
                "{} (bytes are given as base64 strings)",
                found(other)
            )),
        },
        CaveatType::Duration => match json {
            Json::String(s) => parse_duration(s).map(Value::Duration),
            other => Err(format!(
                "{} (durations are strings like `1h30m`)",
                found(other)
            )),
        },
        CaveatType::Timestamp => match json {
            Json::String(s) => parse_timestamp(s).map(Value::Timestamp),
            other => Err(format!(
                "{} (timestamps are RFC 3339 strings like `2024-01-02T03:04:05Z`)",
                found(other)
            )),
        },
        CaveatType::IpAddress => match json {
            Json::String(s) => parse_ip(s).map(Value::Ip),
            other => Err(found(other)),
        },
        CaveatType::List(inner) => match json {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, inner).map_err(|e| format!("element {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()
                .map(|values| Value::List(Arc::from(values))),
            other => Err(found(other)),
        },
        CaveatType::Map(inner) => match json {
            Json::Object(entries) => {
                let mut map = MapValue::with_capacity(entries.len());
                for (k, v) in entries {
                    let value = convert(v, inner).map_err(|e| format!("key `{k}`: {e}"))?;
                    map.insert(Key::String(Arc::from(k.as_str())), value);
                }
                Ok(Value::Map(Arc::new(map)))
            }
            other => Err(found(other)),
        },
        CaveatType::Any => Ok(from_any(json)),
    }
}

/// A JSON value as a dynamic CEL value: integers stay integers (int, or uint above the int
/// range), other numbers are doubles, objects are maps with string keys.
fn from_any(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else {
                Value::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::string(s),
        Json::Array(items) => Value::List(items.iter().map(from_any).collect()),
        Json::Object(entries) => {
            let map: MapValue = entries
                .iter()
                .map(|(k, v)| (Key::String(Arc::from(k.as_str())), from_any(v)))
                .collect();
            Value::Map(Arc::new(map))
        }
    }
}
