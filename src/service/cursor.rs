//! Opaque cursors of paged and resumable operations (ReadRelationships, LookupResources,
//! LookupSubjects, ExportBulkRelationships, and the AuthZEN searches' page tokens).
//!
//! A cursor carries the revision of the snapshot the first page was read at, so every later
//! page reads the same snapshot, and the position of the last item returned. It also carries
//! a fingerprint of the request it belongs to, so a cursor replayed with different parameters
//! is refused instead of silently skipping or repeating results.
//!
//! Layout: `base64url(version | kind | LEB128 revision | fingerprint (8 bytes) | field count |
//! (LEB128 length | bytes)* | checksum (4 bytes))`, unpadded.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{ErrorKind, ErrorReason, ServiceError};
use crate::model::{ObjectRef, RelationshipKey, Revision, SubjectRef};

/// A cursor the caller sent that cannot be used: always the caller's input.
fn invalid(field: &str, message: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(ErrorKind::InvalidArgument, format!("{field}: {message}"))
        .with_reason(ErrorReason::InvalidCursor)
}

const CURSOR_VERSION: u8 = 1;
/// Far beyond any cursor this module writes (a relationship key is at most ~2.5 KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Which RPC a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorKind {
    ReadRelationships = 1,
    LookupResources = 2,
    LookupSubjects = 3,
    ExportRelationships = 4,
    /// AuthZEN action search: the position is the last action name returned.
    ActionSearch = 5,
}

impl CursorKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => CursorKind::ReadRelationships,
            2 => CursorKind::LookupResources,
            3 => CursorKind::LookupSubjects,
            4 => CursorKind::ExportRelationships,
            5 => CursorKind::ActionSearch,
            _ => return None,
        })
    }
}

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub kind: CursorKind,
    /// The snapshot every page of the request reads.
    pub revision: Revision,
    /// Fingerprint of the request parameters (see [`Fingerprint`]).
    pub fingerprint: u64,
    /// The position: the last item returned, as strings.
    pub fields: Vec<String>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(32);
        out.push(CURSOR_VERSION);
        out.push(self.kind as u8);
        put_varint(&mut out, self.revision.0);
        out.extend_from_slice(&self.fingerprint.to_be_bytes());
        // At most a handful of fields are ever written (a relationship key has six).
        out.push(self.fields.len() as u8);
        for f in &self.fields {
            put_varint(&mut out, f.len() as u64);
            out.extend_from_slice(f.as_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decodes `token`, sent in the request field `field` (named by errors), and checks it
    /// belongs to a request of `kind` with `fingerprint`.
    pub fn decode_field(
        field: &str,
        token: &str,
        kind: CursorKind,
        fingerprint: u64,
    ) -> Result<Cursor, ServiceError> {
        let malformed = || {
            invalid(
                field,
                "the cursor is malformed; pass back a cursor exactly as the server returned it",
            )
        };
        if token.is_empty() {
            return Err(invalid(field, "the cursor token is empty"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        if bytes.len() < 2 + 1 + 8 + 1 + 4 {
            return Err(malformed());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 4);
        if checksum(body) != sum {
            return Err(malformed());
        }
        let mut r = Reader {
            bytes: body,
            pos: 0,
        };
        let version = r.byte().ok_or_else(malformed)?;
        if version != CURSOR_VERSION {
            return Err(invalid(
                field,
                format!(
                    "unsupported cursor version {version}; restart the request without a cursor"
                ),
            ));
        }
        let found = r
            .byte()
            .and_then(CursorKind::from_byte)
            .ok_or_else(malformed)?;
        let revision = Revision(r.varint().ok_or_else(malformed)?);
        let fp = r.u64().ok_or_else(malformed)?;
        let count = r.byte().ok_or_else(malformed)?;
        let mut fields = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len =
                usize::try_from(r.varint().ok_or_else(malformed)?).map_err(|_| malformed())?;
            let raw = r.take(len).ok_or_else(malformed)?;
            fields.push(String::from_utf8(raw.to_vec()).map_err(|_| malformed())?);
        }
        if r.pos != body.len() {
            return Err(malformed());
        }
        // A well-formed cursor used with another request is a precondition failure, as in
        // the reference: the request itself is valid, the cursor belongs to another one.
        let mismatch = |why: &str| {
            ServiceError::new(ErrorKind::FailedPrecondition, format!("{field}: {why}"))
                .with_reason(ErrorReason::InvalidCursor)
        };
        if found != kind {
            return Err(mismatch("the cursor was issued by a different RPC"));
        }
        if fp != fingerprint {
            return Err(mismatch(
                "the cursor was issued for a request with different parameters; repeat the original request's parameters with its cursor",
            ));
        }
        Ok(Cursor {
            kind,
            revision,
            fingerprint,
            fields,
        })
    }
}

/// The fields of a relationship key, in cursor order.
pub(crate) fn key_fields(key: &RelationshipKey) -> Vec<String> {
    vec![
        key.resource.object_type.clone(),
        key.resource.object_id.clone(),
        key.relation.clone(),
        key.subject.object.object_type.clone(),
        key.subject.object.object_id.clone(),
        key.subject.relation.clone().unwrap_or_default(),
    ]
}

/// The relationship key of a read or export cursor.
pub(crate) fn key_from_fields(fields: &[String]) -> Result<RelationshipKey, ServiceError> {
    let [rt, rid, rel, st, sid, srel] = fields else {
        return Err(invalid("optional_cursor", "the cursor is malformed"));
    };
    Ok(RelationshipKey {
        resource: ObjectRef::new(rt.clone(), rid.clone()),
        relation: rel.clone(),
        subject: SubjectRef {
            object: ObjectRef::new(st.clone(), sid.clone()),
            relation: (!srel.is_empty()).then(|| srel.clone()),
        },
    })
}

/// The single id of a lookup cursor.
pub(crate) fn id_from_fields(fields: &[String]) -> Result<String, ServiceError> {
    match fields {
        [id] => Ok(id.clone()),
        _ => Err(invalid("optional_cursor", "the cursor is malformed")),
    }
}

/// Builds the fingerprint of a request's parameters (those that must not change between
/// pages). Each part is length-prefixed so different splits never collide trivially.
#[derive(Debug, Clone)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    pub fn new(kind: CursorKind) -> Self {
        let mut f = Fingerprint(0xcbf2_9ce4_8422_2325);
        f.bytes(&[kind as u8]);
        f
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn str(mut self, s: &str) -> Self {
        self.bytes(&(s.len() as u64).to_be_bytes());
        self.bytes(s.as_bytes());
        self
    }

    pub fn opt(self, s: Option<&str>) -> Self {
        match s {
            Some(s) => self.str("+").str(s),
            None => self.str("-"),
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u64(&mut self) -> Option<u64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(u64::from_be_bytes(b))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// FNV-1a over a domain tag and the payload, folded to 4 bytes: catches typos and truncation.
fn checksum(payload: &[u8]) -> [u8; 4] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in b"tessera.cursor".iter().chain(payload) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((h ^ (h >> 32)) as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_relationship;

    fn fp(s: &str) -> u64 {
        Fingerprint::new(CursorKind::ReadRelationships)
            .str(s)
            .finish()
    }

    #[test]
    fn cursors_round_trip() {
        let key = parse_relationship("document:a#viewer@group:eng#member")
            .unwrap()
            .key();
        let c = Cursor {
            kind: CursorKind::ReadRelationships,
            revision: Revision(123_456),
            fingerprint: fp("document"),
            fields: key_fields(&key),
        };
        let token = c.encode();
        let back = Cursor::decode_field(
            "optional_cursor",
            &token,
            CursorKind::ReadRelationships,
            fp("document"),
        )
        .unwrap();
        assert_eq!(back, c);
        assert_eq!(key_from_fields(&back.fields).unwrap(), key);
        let ellipsis = parse_relationship("document:a#viewer@user:x")
            .unwrap()
            .key();
        assert_eq!(key_from_fields(&key_fields(&ellipsis)).unwrap(), ellipsis);
    }

    #[test]
    fn cursors_are_bound_to_their_request() {
        let c = Cursor {
            kind: CursorKind::LookupResources,
            revision: Revision(5),
            fingerprint: fp("a"),
            fields: vec!["doc1".into()],
        };
        let token = c.encode();
        let err = Cursor::decode_field(
            "optional_cursor",
            &token,
            CursorKind::LookupResources,
            fp("b"),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::FailedPrecondition);
        assert!(
            err.message.contains("different parameters"),
            "{}",
            err.message
        );
        let err = Cursor::decode_field(
            "optional_cursor",
            &token,
            CursorKind::LookupSubjects,
            fp("a"),
        )
        .unwrap_err();
        assert!(err.message.contains("different RPC"), "{}", err.message);
    }

    #[test]
    fn garbage_is_refused_with_the_field_name() {
        for bad in ["", "!!!", "AAAA", "abc", &"A".repeat(20_000)] {
            let err =
                Cursor::decode_field("optional_cursor", bad, CursorKind::ReadRelationships, 0)
                    .unwrap_err();
            assert!(
                err.message.starts_with("optional_cursor: "),
                "{}",
                err.message
            );
        }
        let c = Cursor {
            kind: CursorKind::ExportRelationships,
            revision: Revision(1),
            fingerprint: 7,
            fields: vec!["x".into()],
        };
        let mut token = c.encode().into_bytes();
        let last = token.len() - 3;
        token[last] = if token[last] == b'A' { b'B' } else { b'A' };
        let token = String::from_utf8(token).unwrap();
        assert!(
            Cursor::decode_field(
                "optional_cursor",
                &token,
                CursorKind::ExportRelationships,
                7
            )
            .is_err()
        );
    }

    #[test]
    fn fingerprints_separate_parts() {
        let a = Fingerprint::new(CursorKind::LookupSubjects)
            .str("ab")
            .str("c")
            .finish();
        let b = Fingerprint::new(CursorKind::LookupSubjects)
            .str("a")
            .str("bc")
            .finish();
        assert_ne!(a, b);
        let none = Fingerprint::new(CursorKind::LookupSubjects)
            .opt(None)
            .finish();
        let empty = Fingerprint::new(CursorKind::LookupSubjects)
            .opt(Some(""))
            .finish();
        assert_ne!(none, empty);
    }
}
