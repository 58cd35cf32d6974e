//! Value encodings: relationship versions and change-log entries.
//!
//! A compact binary layout (the store holds two copies of every version and one change-log
//! entry per change, so size matters more than self-description). Decoding never panics:
//! anything malformed is [`StoreError::Corrupt`].
//!
//! A change-log header is `timestamp | caller | schema flag | chunk count`, followed, only
//! when the transaction carried metadata, by `HEADER_METADATA | length | JSON object` (format
//! version 2). Headers without metadata are byte-for-byte those of format version 1, so
//! every version-1 entry decodes unchanged (as having no metadata).

use crate::model::{CaveatRef, Context, Relationship, RelationshipKey, Revision, Timestamp};
use crate::store::{RelationshipUpdate, StoreError, TransactionMetadata, WriteOp};

use super::keys;

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_CAVEAT: u8 = 2;
const FLAG_EXPIRATION: u8 = 4;

/// Tag of the optional trailing field of a change-log header: the transaction's metadata.
const HEADER_METADATA: u8 = 1;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("malformed {what}"))
}

/// The attributes of one version of a relationship; `None` is a tombstone (deleted).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes {
    pub caveat: Option<CaveatRef>,
    pub expiration: Option<Timestamp>,
}

impl Attributes {
    pub fn of(rel: &Relationship) -> Self {
        Attributes {
            caveat: rel.caveat.clone(),
            expiration: rel.expiration,
        }
    }

    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    pub fn into_relationship(self, key: RelationshipKey) -> Relationship {
        Relationship {
            resource: key.resource,
            relation: key.relation,
            subject: key.subject,
            caveat: self.caveat,
            expiration: self.expiration,
        }
    }
}

pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A cursor over an encoded value.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, pos: 0, what }
    }

    fn err(&self) -> StoreError {
        corrupt(self.what)
    }

    pub fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err())?;
        self.pos += 1;
        Ok(b)
    }

    pub fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err())
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err())?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.err())?;
        self.pos = end;
        Ok(s)
    }

    pub fn len_bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = usize::try_from(self.varint()?).map_err(|_| self.err())?;
        self.bytes(n)
    }

    pub fn string(&mut self) -> Result<String, StoreError> {
        let b = self.len_bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err())
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn finish(&self) -> Result<(), StoreError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.err())
        }
    }
}

pub fn put_len_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Encodes one version: `None` for a tombstone.
pub fn encode_version(buf: &mut Vec<u8>, attrs: Option<&Attributes>) {
    let Some(a) = attrs else {
        buf.push(FLAG_TOMBSTONE);
        return;
    };
    let mut flags = 0;
    if a.caveat.is_some() {
        flags |= FLAG_CAVEAT;
    }
    if a.expiration.is_some() {
        flags |= FLAG_EXPIRATION;
    }
    buf.push(flags);
    if let Some(e) = &a.expiration {
        keys::put_timestamp(buf, e);
    }
    if let Some(c) = &a.caveat {
        put_len_bytes(buf, c.name.as_bytes());
        if c.context.is_empty() {
            put_varint(buf, 0);
        } else {
            // Serializing a JSON map of JSON values cannot fail.
            let json = serde_json::to_vec(&c.context).unwrap_or_default();
            put_len_bytes(buf, &json);
        }
    }
}

pub fn version_bytes(attrs: Option<&Attributes>) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    encode_version(&mut v, attrs);
    v
}

fn decode_version_from(c: &mut Cursor<'_>) -> Result<Option<Attributes>, StoreError> {
    let flags = c.byte()?;
    if flags & !(FLAG_TOMBSTONE | FLAG_CAVEAT | FLAG_EXPIRATION) != 0 {
        return Err(corrupt("relationship version"));
    }
    if flags & FLAG_TOMBSTONE != 0 {
        return Ok(None);
    }
    let expiration = if flags & FLAG_EXPIRATION != 0 {
        Some(keys::decode_timestamp(c.bytes(keys::TIMESTAMP_LEN)?)?)
    } else {
        None
    };
    let caveat = if flags & FLAG_CAVEAT != 0 {
        let name = c.string()?;
        let json = c.len_bytes()?;
        let context: Context = if json.is_empty() {
            Context::new()
        } else {
            serde_json::from_slice(json).map_err(|_| corrupt("caveat context"))?
        };
        Some(CaveatRef { name, context })
    } else {
        None
    };
    Ok(Some(Attributes { caveat, expiration }))
}

/// Decodes one version value; `None` is a tombstone.
pub fn decode_version(bytes: &[u8]) -> Result<Option<Attributes>, StoreError> {
    let mut c = Cursor::new(bytes, "relationship version");
    let v = decode_version_from(&mut c)?;
    c.finish()?;
    Ok(v)
}

/// The header chunk of a change-log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeHeader {
    pub committed_at: Timestamp,
    pub caller: Option<String>,
    pub schema_changed: bool,
    /// Number of change chunks that follow the header (chunks 1..=chunks).
    pub chunks: u32,
    /// The transaction's metadata (empty: none, and nothing is encoded for it).
    pub metadata: TransactionMetadata,
}

impl ChangeHeader {
    /// True when the encoded header needs format version 2 (it carries metadata).
    pub fn needs_metadata_format(&self) -> bool {
        !self.metadata.is_empty()
    }
}

pub fn encode_header(h: &ChangeHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    keys::put_timestamp(&mut b, &h.committed_at);
    match &h.caller {
        None => b.push(0),
        Some(c) => {
            b.push(1);
            put_len_bytes(&mut b, c.as_bytes());
        }
    }
    b.push(u8::from(h.schema_changed));
    put_varint(&mut b, u64::from(h.chunks));
    if !h.metadata.is_empty() {
        b.push(HEADER_METADATA);
        // Serializing a JSON map of JSON values cannot fail.
        let json = serde_json::to_vec(&h.metadata).unwrap_or_default();
        put_len_bytes(&mut b, &json);
    }
    b
}

pub fn decode_header(bytes: &[u8]) -> Result<ChangeHeader, StoreError> {
    let mut c = Cursor::new(bytes, "change-log header");
    let committed_at = keys::decode_timestamp(c.bytes(keys::TIMESTAMP_LEN)?)?;
    let caller = match c.byte()? {
        0 => None,
        1 => Some(c.string()?),
        _ => return Err(corrupt("change-log header")),
    };
    let schema_changed = match c.byte()? {
        0 => false,
        1 => true,
        _ => return Err(corrupt("change-log header")),
    };
    let chunks = u32::try_from(c.varint()?).map_err(|_| corrupt("change-log header"))?;
    let metadata = if c.is_empty() {
        TransactionMetadata::new()
    } else {
        if c.byte()? != HEADER_METADATA {
            return Err(corrupt("change-log header"));
        }
        serde_json::from_slice(c.len_bytes()?).map_err(|_| corrupt("transaction metadata"))?
    };
    c.finish()?;
    Ok(ChangeHeader {
        committed_at,
        caller,
        schema_changed,
        chunks,
        metadata,
    })
}

/// Appends one change to a change chunk: op, forward identity, version value.
pub fn put_change(buf: &mut Vec<u8>, op: WriteOp, identity: &[u8], version: &[u8]) {
    buf.push(match op {
        WriteOp::Create => 0,
        WriteOp::Touch => 1,
        WriteOp::Delete => 2,
    });
    put_len_bytes(buf, identity);
    put_len_bytes(buf, version);
}

/// One decoded change: op, forward identity bytes, and the relationship as of the change.
pub struct DecodedChange<'a> {
    pub identity: &'a [u8],
    pub update: RelationshipUpdate,
}

/// Decodes a change chunk.
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<DecodedChange<'_>>, StoreError> {
    let mut c = Cursor::new(bytes, "change-log chunk");
    let mut out = Vec::new();
    while !c.is_empty() {
        let op = match c.byte()? {
            0 => WriteOp::Create,
            1 => WriteOp::Touch,
            2 => WriteOp::Delete,
            _ => return Err(corrupt("change-log chunk")),
        };
        let identity = c.len_bytes()?;
        let key = keys::decode_forward_identity(identity)?;
        let version = c.len_bytes()?;
        let attrs = decode_version(version)?.unwrap_or_default();
        out.push(DecodedChange {
            identity,
            update: RelationshipUpdate {
                op,
                relationship: attrs.into_relationship(key),
            },
        });
    }
    Ok(out)
}

/// Revisions are stored as 8 big-endian bytes in meta.
pub fn revision_bytes(r: Revision) -> [u8; 8] {
    r.0.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_relationship;

    #[test]
    fn versions_round_trip() {
        for text in [
            "doc:a#viewer@user:b",
            "doc:a#viewer@user:b[cav]",
            r#"doc:a#viewer@user:b[cav:{"x":[1,"y"]}]"#,
            "doc:a#viewer@user:b[expiration:2030-01-01T00:00:00.123456789Z]",
            r#"doc:a#viewer@user:b[cav:{"x":1}][expiration:1960-01-01T00:00:00Z]"#,
        ] {
            let rel = parse_relationship(text).unwrap();
            let attrs = Attributes::of(&rel);
            let bytes = version_bytes(Some(&attrs));
            assert_eq!(decode_version(&bytes).unwrap(), Some(attrs), "{text}");
        }
        assert_eq!(decode_version(&version_bytes(None)).unwrap(), None);
    }

    #[test]
    fn malformed_values_are_corrupt() {
        for bad in [&b""[..], b"\x08", b"\x04\x00", b"\x02\x05ab", b"\x00extra"] {
            assert!(
                matches!(decode_version(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
        assert!(decode_header(b"\x00").is_err());
        assert!(decode_changes(b"\x07").is_err());
        let mut c = Cursor::new(&[0xFF; 11], "x");
        assert!(c.varint().is_err());
    }

    #[test]
    fn headers_and_changes_round_trip() {
        let h = ChangeHeader {
            committed_at: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            caller: Some("svc".into()),
            schema_changed: true,
            chunks: 3,
            metadata: TransactionMetadata::new(),
        };
        assert_eq!(decode_header(&encode_header(&h)).unwrap(), h);
        let rel = parse_relationship("doc:a#viewer@group:g#member[cav]").unwrap();
        let id = keys::forward_identity(&rel.key());
        let mut chunk = Vec::new();
        put_change(
            &mut chunk,
            WriteOp::Touch,
            &id,
            &version_bytes(Some(&Attributes::of(&rel))),
        );
        put_change(&mut chunk, WriteOp::Delete, &id, &version_bytes(None));
        let changes = decode_changes(&chunk).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].update.relationship, rel);
        assert_eq!(changes[0].update.op, WriteOp::Touch);
        assert_eq!(changes[1].update.op, WriteOp::Delete);
        assert_eq!(changes[1].update.relationship.key(), rel.key());
    }

    #[test]
    fn metadata_rides_after_the_version_1_header() {
        let mut h = ChangeHeader {
            committed_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            caller: None,
            schema_changed: false,
            chunks: 1,
            metadata: TransactionMetadata::new(),
        };
        // A header without metadata is exactly the version-1 layout: timestamp, no caller,
        // no schema change, one chunk.
        let v1 = encode_header(&h);
        assert_eq!(v1.len(), keys::TIMESTAMP_LEN + 3);
        assert_eq!(&v1[keys::TIMESTAMP_LEN..], [0, 0, 1]);
        assert!(!h.needs_metadata_format());
        assert_eq!(decode_header(&v1).unwrap(), h);

        let serde_json::Value::Object(m) =
            serde_json::json!({"reason": "onboarding", "ticket": 42, "tags": ["a", {"b": null}]})
        else {
            unreachable!()
        };
        h.metadata = m;
        assert!(h.needs_metadata_format());
        let v2 = encode_header(&h);
        assert!(v2.starts_with(&v1));
        assert_eq!(v2[v1.len()], HEADER_METADATA);
        assert_eq!(decode_header(&v2).unwrap(), h);

        // An unknown trailing tag or broken JSON is corruption, not silently ignored.
        let mut bad_tag = v1.clone();
        bad_tag.extend_from_slice(&[9, 2, b'{', b'}']);
        assert!(matches!(
            decode_header(&bad_tag),
            Err(StoreError::Corrupt(_))
        ));
        let mut bad_json = v1;
        bad_json.extend_from_slice(&[HEADER_METADATA, 2, b'{', b'x']);
        assert!(matches!(
            decode_header(&bad_json),
            Err(StoreError::Corrupt(_))
        ));
    }
}
