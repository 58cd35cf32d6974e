//! The wire API's published limits on names and ids, checked once at the edge.
//!
//! - object type: `([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]`, at most 128 bytes
//! - object id: one or more of `[a-zA-Z0-9/_|\-=+]`, at most 1024 bytes, or `*` where allowed
//! - relation / permission: `[a-z][a-z0-9_]{1,62}[a-z0-9]`
//! - caveat name: `[a-zA-Z0-9_][a-zA-Z0-9/_|-]{0,127}`

use super::{ModelError, WILDCARD_ID};

pub const MAX_OBJECT_ID_LEN: usize = 1024;

/// The first instant a `google.protobuf.Timestamp` can hold: 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// The last second a `google.protobuf.Timestamp` can hold: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Timestamps (expirations) must lie in the range of `google.protobuf.Timestamp`, years 1 to
/// 9999, so every stored value can be sent back on the wire and in RFC 3339.
pub fn validate_timestamp(field: &'static str, t: &super::Timestamp) -> Result<(), ModelError> {
    if (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.timestamp()) {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            &t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
        ))
    }
}
pub const MAX_TYPE_NAME_LEN: usize = 128;

/// One `[a-z][a-z0-9_]{min_mid,max_mid}[a-z0-9]` segment; returns a reason on failure.
fn check_identifier(s: &str, max_len: usize) -> Result<(), String> {
    let bytes = s.as_bytes();
    if bytes.len() < 3 {
        return Err("must be at least 3 characters long".into());
    }
    if bytes.len() > max_len {
        return Err(format!("must be at most {max_len} characters long"));
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err("must start with a lowercase letter".into());
    }
    if let Some(c) = bytes
        .iter()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'_'))
    {
        return Err(format!(
            "may only contain lowercase letters, digits and `_` (found `{}`)",
            char::from(*c).escape_default()
        ));
    }
    if bytes[bytes.len() - 1] == b'_' {
        return Err("must not end with `_`".into());
    }
    Ok(())
}

/// `document`, `tenant/document`, `org/team/document`.
pub fn validate_object_type(s: &str) -> Result<(), ModelError> {
    if s.is_empty() {
        return Err(ModelError::invalid("object type", s, "must not be empty"));
    }
    if s.len() > MAX_TYPE_NAME_LEN {
        return Err(ModelError::invalid(
            "object type",
            s,
            format!("must be at most {MAX_TYPE_NAME_LEN} bytes long"),
        ));
    }
    let mut segments: Vec<&str> = s.split('/').collect();
    let last = segments.pop().unwrap_or_default();
    for prefix in segments {
        check_identifier(prefix, 63)
            .map_err(|r| ModelError::invalid("object type", s, format!("prefix `{prefix}` {r}")))?;
    }
    check_identifier(last, 64).map_err(|r| ModelError::invalid("object type", s, r))
}

/// Object ids: `[a-zA-Z0-9/_|\-=+]{1,1024}`, or `*` when `allow_wildcard`.
pub fn validate_object_id(s: &str, allow_wildcard: bool) -> Result<(), ModelError> {
    if s == WILDCARD_ID {
        return if allow_wildcard {
            Ok(())
        } else {
            Err(ModelError::invalid(
                "object id",
                s,
                "a wildcard is not allowed here",
            ))
        };
    }
    if s.is_empty() {
        return Err(ModelError::invalid("object id", s, "must not be empty"));
    }
    if s.len() > MAX_OBJECT_ID_LEN {
        return Err(ModelError::invalid(
            "object id",
            s,
            format!("must be at most {MAX_OBJECT_ID_LEN} bytes long"),
        ));
    }
    if let Some(c) = s.chars().find(|c| !is_object_id_char(*c)) {
        return Err(ModelError::invalid(
            "object id",
            s,
            format!(
                "may only contain letters, digits and `/_|-=+` (found `{}`)",
                c.escape_default()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn is_object_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '|' | '-' | '=' | '+')
}

/// Relation and permission names: `[a-z][a-z0-9_]{1,62}[a-z0-9]`.
pub fn validate_relation_name(s: &str) -> Result<(), ModelError> {
    check_identifier(s, 64).map_err(|r| ModelError::invalid("relation", s, r))
}

/// Caveat names: `[a-zA-Z0-9_][a-zA-Z0-9/_|-]{0,127}`.
pub fn validate_caveat_name(s: &str) -> Result<(), ModelError> {
    let mut chars = s.chars();
    match chars.next() {
        None => Err(ModelError::invalid("caveat name", s, "must not be empty")),
        Some(c) if !(c.is_ascii_alphanumeric() || c == '_') => Err(ModelError::invalid(
            "caveat name",
            s,
            "must start with a letter, digit or `_`",
        )),
        Some(_) if s.len() > 128 => Err(ModelError::invalid(
            "caveat name",
            s,
            "must be at most 128 characters long",
        )),
        Some(_) => match chars
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '|' | '-')))
        {
            Some(c) => Err(ModelError::invalid(
                "caveat name",
                s,
                format!(
                    "may only contain letters, digits and `/_|-` (found `{}`)",
                    c.escape_default()
                ),
            )),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types() {
        for ok in [
            "user",
            "document",
            "tenant/doc",
            "a1b/c_d",
            "org/team/repo_x",
        ] {
            assert!(validate_object_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "us", "User", "_user", "user_", "tenant/", "/user", "a-b", "t/x",
        ] {
            assert!(validate_object_type(bad).is_err(), "{bad}");
        }
        assert!(validate_object_type(&"a".repeat(65)).is_err());
        assert!(validate_object_type(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn object_ids() {
        for ok in ["alice", "a/b|c-d=e+f_g", "1", "Z"] {
            assert!(validate_object_id(ok, false).is_ok(), "{ok}");
        }
        assert!(validate_object_id("*", true).is_ok());
        let err = validate_object_id("*", false).unwrap_err().to_string();
        assert!(err.contains("wildcard"), "{err}");
        let err = validate_object_id("a b", false).unwrap_err().to_string();
        assert!(err.contains("object id") && err.contains("` `"), "{err}");
        assert!(validate_object_id("", false).is_err());
        assert!(validate_object_id("a*", true).is_err());
        assert!(validate_object_id(&"x".repeat(1024), false).is_ok());
        assert!(validate_object_id(&"x".repeat(1025), false).is_err());
    }

    #[test]
    fn relations_and_caveats() {
        assert!(validate_relation_name("viewer").is_ok());
        assert!(validate_relation_name("can_view2").is_ok());
        assert!(validate_relation_name("ab").is_err());
        assert!(validate_relation_name("Viewer").is_err());
        assert!(validate_relation_name("view_").is_err());
        assert!(validate_caveat_name("ip_allowed").is_ok());
        assert!(validate_caveat_name("ns/Caveat-1").is_ok());
        assert!(validate_caveat_name("-x").is_err());
        assert!(validate_caveat_name("a b").is_err());
    }
}
