//! AuthZEN ids ⇄ Tessera object ids.
//!
//! AuthZEN subjects and resources have free-form string ids (emails, UUIDs, paths); Tessera
//! object ids are `[a-zA-Z0-9/_|\-=+]{1,1024}`. The mapping escapes every byte of the UTF-8
//! encoding of a character outside that alphabet, and of the escape character `=` itself, as
//! `=XX` (two upper-case hex digits):
//!
//! - `alice@example.com` ⇄ `alice=40example=2Ecom`, `*` ⇄ `=2A`, `a=b` ⇄ `a=3Db`;
//! - an id that is already a valid object id and has no `=` maps to itself (`doc-1`, `a/b`);
//! - [`to_object_id`] ∘ [`from_object_id`] is the identity on every string, and
//!   [`to_object_id`] always yields a valid object id, or fails when the escaped id would be
//!   longer than 1024 bytes (or the id is empty).
//!
//! Going back, [`from_object_id`] accepts exactly the escaped forms [`to_object_id`] writes
//! (upper-case hex, only where escaping was needed, valid UTF-8). An object id written through
//! the `authzed.api.v1` API that is not such a form (a raw `=` not followed by an escape, such
//! as base64 padding `abc==`) has no AuthZEN spelling: search results return it as it is
//! stored, and the wildcard `*` of a subject search means "every subject of the type".

use crate::model::validation::MAX_OBJECT_ID_LEN;

/// The escape character (one of the object id alphabet, so escaped ids stay valid).
const ESCAPE: char = '=';

fn passes_through(c: char) -> bool {
    c != ESCAPE && (c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '|' | '-' | '+'))
}

/// Why an AuthZEN id has no object id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error(
        "is {escaped} bytes long once escaped for Tessera (characters outside \
         `[a-zA-Z0-9/_|-+]` take 3 bytes per UTF-8 byte), more than the limit of {MAX_OBJECT_ID_LEN}"
    )]
    TooLong { escaped: usize },
}

/// The object id of an AuthZEN id.
pub fn to_object_id(id: &str) -> Result<String, IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    let mut out = String::with_capacity(id.len());
    let mut buf = [0u8; 4];
    for c in id.chars() {
        if passes_through(c) {
            out.push(c);
        } else {
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push(ESCAPE);
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0xF));
            }
        }
        // Checked as it grows: a long input is refused without building all of it.
        if out.len() > MAX_OBJECT_ID_LEN {
            return Err(IdError::TooLong {
                escaped: escaped_len(id),
            });
        }
    }
    Ok(out)
}

fn escaped_len(id: &str) -> usize {
    id.chars()
        .map(|c| {
            if passes_through(c) {
                1
            } else {
                3 * c.len_utf8()
            }
        })
        .sum()
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0xF)])
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The AuthZEN id of an object id, when it is an escaped form [`to_object_id`] writes.
pub fn from_object_id(object_id: &str) -> Option<String> {
    let bytes = object_id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == ESCAPE as u8 {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    // Only the canonical form: `=41` would otherwise also decode to `A`.
    (to_object_id(&id).ok()? == object_id).then_some(id)
}

/// How a search result's object id is shown: its AuthZEN id, or the object id itself when it
/// has no AuthZEN spelling (see the module documentation).
pub fn display_id(object_id: &str) -> String {
    from_object_id(object_id).unwrap_or_else(|| object_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(
            to_object_id("alice@example.com").unwrap(),
            "alice=40example=2Ecom"
        );
        assert_eq!(to_object_id("doc-1").unwrap(), "doc-1");
        assert_eq!(to_object_id("a/b|c+d_e").unwrap(), "a/b|c+d_e");
        assert_eq!(to_object_id("a=b").unwrap(), "a=3Db");
        assert_eq!(to_object_id("*").unwrap(), "=2A");
        assert_eq!(to_object_id("é").unwrap(), "=C3=A9");
        assert_eq!(to_object_id(""), Err(IdError::Empty));
        assert_eq!(
            from_object_id("alice=40example=2Ecom").unwrap(),
            "alice@example.com"
        );
        // Not escaped forms: lower-case hex, a needless escape, a raw `=`, broken UTF-8.
        for bad in ["a=2e", "=41", "abc==", "a=", "=C3"] {
            assert_eq!(from_object_id(bad), None, "{bad}");
        }
        assert_eq!(display_id("abc=="), "abc==");
        assert_eq!(display_id("*"), "*");
    }

    #[test]
    fn long_ids_are_refused_with_their_escaped_length() {
        assert!(to_object_id(&"x".repeat(1024)).is_ok());
        assert_eq!(
            to_object_id(&"x".repeat(1025)),
            Err(IdError::TooLong { escaped: 1025 })
        );
        assert_eq!(
            to_object_id(&"@".repeat(400)),
            Err(IdError::TooLong { escaped: 1200 })
        );
    }

    proptest! {
        #[test]
        fn ids_round_trip_into_valid_object_ids(id in "\\PC{0,400}|[a-z@.=*]{0,40}") {
            match to_object_id(&id) {
                Ok(object_id) => {
                    prop_assert!(crate::model::validate_object_id(&object_id, false).is_ok(), "{object_id}");
                    prop_assert_eq!(from_object_id(&object_id), Some(id.clone()));
                }
                Err(IdError::Empty) => prop_assert!(id.is_empty()),
                Err(IdError::TooLong { escaped }) => prop_assert!(escaped > MAX_OBJECT_ID_LEN),
            }
        }

        #[test]
        fn valid_ids_without_the_escape_map_to_themselves(id in "[a-zA-Z0-9/_|+-]{1,1024}") {
            prop_assert_eq!(to_object_id(&id).unwrap(), id.clone());
            prop_assert_eq!(from_object_id(&id), Some(id));
        }

        #[test]
        fn decoding_then_encoding_gives_back_the_object_id(object_id in "[a-zA-Z0-9=/_|+-]{1,64}") {
            if let Some(id) = from_object_id(&object_id) {
                prop_assert_eq!(to_object_id(&id).unwrap(), object_id);
            }
        }
    }
}
