//! Order-preserving key encodings of the RocksDB store.
//!
//! Strings are written escaped and terminated: a `0x00` byte inside a string becomes
//! `0x00 0xFF`, and every string ends with `0x00 0x01`. Comparing two encodings bytewise
//! therefore compares the strings bytewise (a shorter string that is a prefix of a longer one
//! sorts first, because the terminator's `0x01` is below any escaped or plain continuation),
//! and no string can be confused with a longer one whatever bytes it contains. A subject
//! relation is a tag byte: `0x00` for the ellipsis (so it sorts first), `0x01` then the string.
//!
//! Layouts (`|` separates parts; `ver` is the inverted big-endian revision, so under one
//! relationship the newest version comes first):
//!
//! - forward: `resource type | resource id | relation | subject type | subject id | subject relation | ver`
//! - reverse: `subject type | subject id | subject relation | resource type | relation | resource id | ver`
//! - expiry: `expiration seconds (sign-flipped BE) | nanoseconds BE | forward key with ver`
//! - changelog: `revision BE | chunk BE`
//!
//! Every relationship part is self-delimiting, so all the versions of one relationship are
//! exactly the keys that start with its encoded identity.

use crate::model::{ObjectRef, RelationshipKey, Revision, SubjectRef, Timestamp};
use crate::store::StoreError;

/// Length of the version suffix that ends every forward and reverse key.
pub const VERSION_LEN: usize = 8;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
const ELLIPSIS_TAG: u8 = 0x00;
const RELATION_TAG: u8 = 0x01;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("malformed {what} key"))
}

/// Appends `s` escaped but without the terminator: the encoding of every string starting with `s`
/// starts with these bytes (used for id-prefix scans).
pub fn put_escaped(buf: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        buf.push(b);
        if b == ESCAPE {
            buf.push(ESCAPED_ZERO);
        }
    }
}

/// Appends one complete string component.
pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_escaped(buf, s.as_bytes());
    buf.push(ESCAPE);
    buf.push(TERMINATOR);
}

/// Appends a subject relation (`None` is the ellipsis and sorts first).
pub fn put_subject_relation(buf: &mut Vec<u8>, relation: Option<&str>) {
    match relation {
        None => buf.push(ELLIPSIS_TAG),
        Some(r) => {
            buf.push(RELATION_TAG);
            put_str(buf, r);
        }
    }
}

/// Appends the version suffix of `revision`.
pub fn put_version(buf: &mut Vec<u8>, revision: Revision) {
    buf.extend_from_slice(&(!revision.0).to_be_bytes());
}

/// A reader over one encoded key.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// The bytes up to the next escape and the byte after it, moving past both.
    fn run(&mut self) -> Result<(&'a [u8], u8), StoreError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == ESCAPE)
            .ok_or_else(|| corrupt(self.what))?;
        let next = *rest.get(len + 1).ok_or_else(|| corrupt(self.what))?;
        self.pos += len + 2;
        Ok((&rest[..len], next))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        // Copies the runs between escapes whole (names and ids rarely hold a zero byte, so
        // this is usually one copy into an exactly sized buffer).
        let mut out = Vec::new();
        loop {
            let (run, next) = self.run()?;
            if out.is_empty() && next == TERMINATOR {
                out = run.to_vec();
                break;
            }
            out.extend_from_slice(run);
            match next {
                ESCAPED_ZERO => out.push(ESCAPE),
                TERMINATOR => break,
                _ => return Err(corrupt(self.what)),
            }
        }
        String::from_utf8(out).map_err(|_| corrupt(self.what))
    }

    /// Moves past one string without decoding it.
    fn skip_string(&mut self) -> Result<(), StoreError> {
        loop {
            match self.run()?.1 {
                ESCAPED_ZERO => {}
                TERMINATOR => return Ok(()),
                _ => return Err(corrupt(self.what)),
            }
        }
    }

    fn subject_relation(&mut self) -> Result<Option<String>, StoreError> {
        let tag = *self.buf.get(self.pos).ok_or_else(|| corrupt(self.what))?;
        self.pos += 1;
        match tag {
            ELLIPSIS_TAG => Ok(None),
            RELATION_TAG => self.string().map(Some),
            _ => Err(corrupt(self.what)),
        }
    }

    fn finish(&self) -> Result<(), StoreError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(corrupt(self.what))
        }
    }
}

/// The forward identity of a relationship (no version suffix).
pub fn forward_identity(key: &RelationshipKey) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    put_forward_identity(&mut buf, key);
    buf
}

pub fn put_forward_identity(buf: &mut Vec<u8>, key: &RelationshipKey) {
    put_forward_parts(buf, &key.resource, &key.relation, &key.subject);
}

/// Appends the forward identity of `resource#relation@subject`.
pub fn put_forward_parts(
    buf: &mut Vec<u8>,
    resource: &ObjectRef,
    relation: &str,
    subject: &SubjectRef,
) {
    put_str(buf, &resource.object_type);
    put_str(buf, &resource.object_id);
    put_str(buf, relation);
    put_str(buf, &subject.object.object_type);
    put_str(buf, &subject.object.object_id);
    put_subject_relation(buf, subject.relation.as_deref());
}

/// The reverse identity of a relationship (no version suffix).
pub fn reverse_identity(key: &RelationshipKey) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    put_reverse_parts(&mut buf, &key.resource, &key.relation, &key.subject);
    buf
}

/// Appends the reverse identity of `resource#relation@subject`.
pub fn put_reverse_parts(
    buf: &mut Vec<u8>,
    resource: &ObjectRef,
    relation: &str,
    subject: &SubjectRef,
) {
    put_str(buf, &subject.object.object_type);
    put_str(buf, &subject.object.object_id);
    put_subject_relation(buf, subject.relation.as_deref());
    put_str(buf, &resource.object_type);
    put_str(buf, relation);
    put_str(buf, &resource.object_id);
}

/// Splits a forward or reverse key into identity bytes and revision.
pub fn split_version(key: &[u8]) -> Result<(&[u8], Revision), StoreError> {
    if key.len() < VERSION_LEN {
        return Err(corrupt("relationship"));
    }
    let (identity, ver) = key.split_at(key.len() - VERSION_LEN);
    let mut bytes = [0u8; VERSION_LEN];
    bytes.copy_from_slice(ver);
    Ok((identity, Revision(!u64::from_be_bytes(bytes))))
}

/// Decodes a forward identity (without version suffix).
pub fn decode_forward_identity(identity: &[u8]) -> Result<RelationshipKey, StoreError> {
    let mut r = Reader::new(identity, "forward");
    let resource_type = r.string()?;
    let resource_id = r.string()?;
    let relation = r.string()?;
    let subject_type = r.string()?;
    let subject_id = r.string()?;
    let subject_relation = r.subject_relation()?;
    r.finish()?;
    Ok(RelationshipKey {
        resource: ObjectRef::new(resource_type, resource_id),
        relation,
        subject: SubjectRef {
            object: ObjectRef::new(subject_type, subject_id),
            relation: subject_relation,
        },
    })
}

/// Decodes a reverse identity (without version suffix).
pub fn decode_reverse_identity(identity: &[u8]) -> Result<RelationshipKey, StoreError> {
    let mut r = Reader::new(identity, "reverse");
    let subject_type = r.string()?;
    let subject_id = r.string()?;
    let subject_relation = r.subject_relation()?;
    let resource_type = r.string()?;
    let relation = r.string()?;
    let resource_id = r.string()?;
    r.finish()?;
    Ok(RelationshipKey {
        resource: ObjectRef::new(resource_type, resource_id),
        relation,
        subject: SubjectRef {
            object: ObjectRef::new(subject_type, subject_id),
            relation: subject_relation,
        },
    })
}

/// The resource id of a reverse identity, without decoding the rest.
pub fn decode_reverse_resource_id(identity: &[u8]) -> Result<String, StoreError> {
    let mut r = Reader::new(identity, "reverse");
    r.skip_string()?; // subject type
    r.skip_string()?; // subject id
    let tag = *r.buf.get(r.pos).ok_or_else(|| corrupt(r.what))?;
    r.pos += 1;
    match tag {
        ELLIPSIS_TAG => {}
        RELATION_TAG => r.skip_string()?,
        _ => return Err(corrupt(r.what)),
    }
    r.skip_string()?; // resource type
    r.skip_string()?; // relation
    let resource_id = r.string()?;
    r.finish()?;
    Ok(resource_id)
}

/// Decodes a full forward key (identity and version).
pub fn decode_forward_key(key: &[u8]) -> Result<(RelationshipKey, Revision), StoreError> {
    let (identity, rev) = split_version(key)?;
    Ok((decode_forward_identity(identity)?, rev))
}

/// The first key of `identity`'s versions at or below `revision` (seek target of a read at it).
pub fn version_seek_key(identity: &[u8], revision: Revision) -> Vec<u8> {
    let mut k = Vec::with_capacity(identity.len() + VERSION_LEN);
    k.extend_from_slice(identity);
    put_version(&mut k, revision);
    k
}

/// A key strictly after every version of `identity` (and before any other identity).
pub fn after_all_versions(identity: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(identity.len() + VERSION_LEN + 1);
    k.extend_from_slice(identity);
    k.extend_from_slice(&[0xFF; VERSION_LEN + 1]);
    k
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last != 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// Encodes a timestamp so that byte order is time order.
pub fn put_timestamp(buf: &mut Vec<u8>, t: &Timestamp) {
    let secs = (t.timestamp() as u64) ^ (1 << 63);
    buf.extend_from_slice(&secs.to_be_bytes());
    buf.extend_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
}

/// Length of an encoded timestamp.
pub const TIMESTAMP_LEN: usize = 12;

pub fn decode_timestamp(bytes: &[u8]) -> Result<Timestamp, StoreError> {
    if bytes.len() != TIMESTAMP_LEN {
        return Err(corrupt("timestamp"));
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[..8]);
    let mut n = [0u8; 4];
    n.copy_from_slice(&bytes[8..]);
    let secs = (u64::from_be_bytes(s) ^ (1 << 63)) as i64;
    chrono::DateTime::from_timestamp(secs, u32::from_be_bytes(n))
        .ok_or_else(|| corrupt("timestamp"))
}

/// An expiry-index key: expiration, then the forward key (with version) of the expiring version.
pub fn expiry_key(expiration: &Timestamp, forward_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TIMESTAMP_LEN + forward_key.len());
    put_timestamp(&mut k, expiration);
    k.extend_from_slice(forward_key);
    k
}

/// Splits an expiry-index key into expiration and forward key.
pub fn split_expiry_key(key: &[u8]) -> Result<(Timestamp, &[u8]), StoreError> {
    if key.len() < TIMESTAMP_LEN {
        return Err(corrupt("expiry"));
    }
    let (ts, fwd) = key.split_at(TIMESTAMP_LEN);
    Ok((decode_timestamp(ts)?, fwd))
}

/// A change-log key: one transaction's entry is split into chunks 0 (header), 1, 2, ...
pub fn changelog_key(revision: Revision, chunk: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&revision.0.to_be_bytes());
    k[8..].copy_from_slice(&chunk.to_be_bytes());
    k
}

pub fn decode_changelog_key(key: &[u8]) -> Result<(Revision, u32), StoreError> {
    if key.len() != 12 {
        return Err(corrupt("changelog"));
    }
    let mut r = [0u8; 8];
    r.copy_from_slice(&key[..8]);
    let mut c = [0u8; 4];
    c.copy_from_slice(&key[8..]);
    Ok((Revision(u64::from_be_bytes(r)), u32::from_be_bytes(c)))
}

/// Meta keys.
pub const META_FORMAT: &[u8] = b"format";
pub const META_HEAD: &[u8] = b"head";
pub const META_OLDEST: &[u8] = b"oldest";
pub const META_SCHEMA_PREFIX: &[u8] = b"schema/";

pub fn schema_key(revision: Revision) -> Vec<u8> {
    let mut k = META_SCHEMA_PREFIX.to_vec();
    k.extend_from_slice(&revision.0.to_be_bytes());
    k
}

pub fn decode_schema_key(key: &[u8]) -> Result<Revision, StoreError> {
    let rest = key
        .strip_prefix(META_SCHEMA_PREFIX)
        .ok_or_else(|| corrupt("schema"))?;
    let bytes: [u8; 8] = rest.try_into().map_err(|_| corrupt("schema"))?;
    Ok(Revision(u64::from_be_bytes(bytes)))
}

pub fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("malformed {what} value")))?;
    Ok(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any string, biased towards the bytes that matter to the escape scheme.
    fn any_str() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('\u{0}'),
                Just('\u{1}'),
                Just('\u{ff}'),
                Just('a'),
                Just('b'),
                Just('/'),
                any::<char>(),
            ],
            0..6,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn any_key() -> impl Strategy<Value = RelationshipKey> {
        (
            any_str(),
            any_str(),
            any_str(),
            any_str(),
            any_str(),
            prop::option::of(any_str()),
        )
            .prop_map(|(rt, ri, rel, st, si, sr)| RelationshipKey {
                resource: ObjectRef::new(rt, ri),
                relation: rel,
                subject: SubjectRef {
                    object: ObjectRef::new(st, si),
                    relation: sr,
                },
            })
    }

    fn reverse_tuple(k: &RelationshipKey) -> impl Ord + '_ {
        (
            &k.subject.object.object_type,
            &k.subject.object.object_id,
            &k.subject.relation,
            &k.resource.object_type,
            &k.relation,
            &k.resource.object_id,
        )
    }

    proptest! {
        #[test]
        fn forward_round_trips(k in any_key(), rev in 1u64..u64::MAX) {
            let key = version_seek_key(&forward_identity(&k), Revision(rev));
            let (decoded, r) = decode_forward_key(&key).unwrap();
            prop_assert_eq!(decoded, k);
            prop_assert_eq!(r, Revision(rev));
        }

        #[test]
        fn reverse_round_trips(k in any_key()) {
            let id = reverse_identity(&k);
            prop_assert_eq!(
                decode_reverse_resource_id(&id).unwrap(),
                k.resource.object_id.clone()
            );
            prop_assert_eq!(decode_reverse_identity(&id).unwrap(), k);
            // A truncated or extended identity is corrupt, never a wrong id.
            prop_assert!(decode_reverse_resource_id(&id[..id.len() - 1]).is_err());
            let mut longer = id.clone();
            longer.push(b'x');
            prop_assert!(decode_reverse_resource_id(&longer).is_err());
        }

        /// Byte order of encodings equals the query order of relationship keys (the derived
        /// `Ord` of `RelationshipKey` orders fields as the trait documents, ellipsis first).
        #[test]
        fn forward_order_is_key_order(a in any_key(), b in any_key()) {
            prop_assert_eq!(forward_identity(&a).cmp(&forward_identity(&b)), a.cmp(&b));
        }

        #[test]
        fn reverse_order_is_subject_order(a in any_key(), b in any_key()) {
            prop_assert_eq!(
                reverse_identity(&a).cmp(&reverse_identity(&b)),
                reverse_tuple(&a).cmp(&reverse_tuple(&b))
            );
        }

        /// Versions of one relationship are newest first and stay between the relationship's
        /// neighbours, so a prefix scan sees each relationship's versions together.
        #[test]
        fn versions_sort_newest_first_within_identity(
            a in any_key(), b in any_key(), r1 in 1u64..1000, r2 in 1u64..1000
        ) {
            let ia = forward_identity(&a);
            let ka1 = version_seek_key(&ia, Revision(r1));
            let ka2 = version_seek_key(&ia, Revision(r2));
            prop_assert_eq!(ka1.cmp(&ka2), r2.cmp(&r1));
            prop_assert!(ka1 < after_all_versions(&ia));
            let ib = forward_identity(&b);
            if a != b {
                prop_assert!(!ib.starts_with(&ia), "identity encodings are prefix-free");
                let kb = version_seek_key(&ib, Revision(r2));
                prop_assert_eq!(ka1.cmp(&kb), a.cmp(&b));
                prop_assert_eq!(after_all_versions(&ia) < kb, a < b);
            }
        }

        #[test]
        fn escaped_prefix_is_prefix_of_encoding(s in any_str(), t in any_str()) {
            let mut p = Vec::new();
            put_escaped(&mut p, s.as_bytes());
            let mut full = Vec::new();
            put_str(&mut full, &format!("{s}{t}"));
            prop_assert!(full.starts_with(&p));
        }

        #[test]
        fn timestamps_order_and_round_trip(a in -62_000_000_000i64..250_000_000_000, an in 0u32..1_000_000_000,
                                           b in -62_000_000_000i64..250_000_000_000, bn in 0u32..1_000_000_000) {
            let ta = chrono::DateTime::from_timestamp(a, an).unwrap();
            let tb = chrono::DateTime::from_timestamp(b, bn).unwrap();
            let mut ea = Vec::new();
            put_timestamp(&mut ea, &ta);
            let mut eb = Vec::new();
            put_timestamp(&mut eb, &tb);
            prop_assert_eq!(ea.cmp(&eb), ta.cmp(&tb));
            prop_assert_eq!(decode_timestamp(&ea).unwrap(), ta);
        }
    }

    #[test]
    fn ellipsis_sorts_before_any_relation() {
        let k = |rel: Option<&str>| RelationshipKey {
            resource: ObjectRef::new("doc", "a"),
            relation: "viewer".into(),
            subject: SubjectRef::new("group", "eng", rel),
        };
        assert!(forward_identity(&k(None)) < forward_identity(&k(Some("aaa"))));
        assert!(forward_identity(&k(Some("aaa"))) < forward_identity(&k(Some("aab"))));
    }

    #[test]
    fn a_string_sorts_before_its_extensions_including_zero_bytes() {
        let enc = |s: &str| {
            let mut b = Vec::new();
            put_str(&mut b, s);
            b
        };
        assert!(enc("ab") < enc("ab\u{0}"));
        assert!(enc("ab\u{0}") < enc("ab\u{1}"));
        assert!(enc("ab") < enc("abc"));
        assert!(enc("a\u{0}b") < enc("a\u{0}c"));
    }

    #[test]
    fn malformed_keys_are_reported_as_corrupt_not_panics() {
        for bad in [
            &b""[..],
            b"\x00",
            b"abc",
            b"a\x00\x02",
            b"a\x00\x01",
            &[0xFF; 7],
        ] {
            assert!(matches!(
                decode_forward_key(bad),
                Err(StoreError::Corrupt(_))
            ));
            assert!(matches!(
                decode_reverse_identity(bad),
                Err(StoreError::Corrupt(_))
            ));
        }
        assert!(decode_changelog_key(b"short").is_err());
        assert!(decode_schema_key(b"schema/x").is_err());
        assert!(split_expiry_key(b"x").is_err());
    }

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xFF"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xFF\xFF"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn changelog_keys_order_by_revision_then_chunk() {
        assert!(changelog_key(Revision(1), 9) < changelog_key(Revision(2), 0));
        assert!(changelog_key(Revision(2), 0) < changelog_key(Revision(2), 1));
        assert_eq!(
            decode_changelog_key(&changelog_key(Revision(7), 3)).unwrap(),
            (Revision(7), 3)
        );
    }
}
