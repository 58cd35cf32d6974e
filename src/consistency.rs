//! Revisions as seen by clients: zookies (the API's `ZedToken`) and consistency modes.
//!
//! A zookie is `base64url(version byte | LEB128 revision | 4-byte checksum)`, without
//! padding: about a dozen characters, opaque to clients, versioned so the layout can change,
//! and checksummed so that a mistyped or truncated token is refused rather than read as some
//! other revision.
//!
//! [`SnapshotChooser`] turns a request's [`Consistency`] into a revision of a [`Store`]:
//! - `MinimizeLatency`: a recent head revision cached and shared across requests (so caches
//!   keyed by revision hit), refreshed once it is older than the chooser's bounded staleness
//!   ([`DEFAULT_MAX_STALENESS`], one second, unless configured);
//! - `AtLeastAsFresh(z)`: that cached revision when it is at least `z`, else the current head;
//!   a `z` beyond the head is an error, never a silent stale read;
//! - `AtExactSnapshot(z)`: exactly `z`, or an error when `z` is garbage-collected or in the future;
//! - `FullyConsistent`: the current head.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::model::Revision;
use crate::store::{Snapshot, Store, StoreError};

/// The zookie layout this build writes (and the only one it reads).
const ZOOKIE_VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 4;
/// Longest valid payload: version, a 10-byte varint, checksum.
const MAX_PAYLOAD: usize = 1 + 10 + CHECKSUM_LEN;

/// Why a zookie was refused. The API maps every variant to `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZookieError {
    #[error("the zookie is empty")]
    Empty,
    #[error("zookie `{token}` is not base64url text")]
    Encoding { token: String },
    #[error("zookie `{token}` has unsupported version {version} (this server reads version 1)")]
    UnsupportedVersion { token: String, version: u8 },
    #[error("zookie `{token}` is malformed")]
    Malformed { token: String },
    #[error("zookie `{token}` fails its checksum (altered or truncated)")]
    Checksum { token: String },
}

/// A decoded zookie: one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zookie(pub Revision);

impl Zookie {
    /// The token for `revision`.
    pub fn encode(revision: Revision) -> String {
        let mut payload = Vec::with_capacity(MAX_PAYLOAD);
        payload.push(ZOOKIE_VERSION);
        let mut v = revision.0;
        while v >= 0x80 {
            payload.push((v as u8) | 0x80);
            v >>= 7;
        }
        payload.push(v as u8);
        let sum = checksum(&payload);
        payload.extend_from_slice(&sum);
        base64url_encode(&payload)
    }

    /// The revision in `token`.
    pub fn decode(token: &str) -> Result<Revision, ZookieError> {
        if token.is_empty() {
            return Err(ZookieError::Empty);
        }
        let shown = || shorten(token);
        // Longer than any token this format produces: refuse before decoding.
        if token.len() > MAX_PAYLOAD.div_ceil(3) * 4 {
            return Err(ZookieError::Malformed { token: shown() });
        }
        let payload =
            base64url_decode(token).ok_or_else(|| ZookieError::Encoding { token: shown() })?;
        let (&version, rest) = payload
            .split_first()
            .ok_or_else(|| ZookieError::Malformed { token: shown() })?;
        if version != ZOOKIE_VERSION {
            return Err(ZookieError::UnsupportedVersion {
                token: shown(),
                version,
            });
        }
        if rest.len() < 1 + CHECKSUM_LEN {
            return Err(ZookieError::Malformed { token: shown() });
        }
        let (body, sum) = payload.split_at(payload.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(ZookieError::Checksum { token: shown() });
        }
        let mut value: u64 = 0;
        let varint = &body[1..];
        for (i, &b) in varint.iter().enumerate() {
            let last = i + 1 == varint.len();
            if i >= 10 || (i == 9 && b > 1) || (b & 0x80 == 0) != last {
                return Err(ZookieError::Malformed { token: shown() });
            }
            value |= u64::from(b & 0x7F) << (7 * i);
        }
        Ok(Revision(value))
    }

    pub fn revision(self) -> Revision {
        self.0
    }
}

impl fmt::Display for Zookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Zookie::encode(self.0))
    }
}

impl FromStr for Zookie {
    type Err = ZookieError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Zookie::decode(s).map(Zookie)
    }
}

fn shorten(token: &str) -> String {
    const MAX: usize = 40;
    if token.len() <= MAX {
        return token.to_string();
    }
    let mut cut = MAX;
    while !token.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &token[..cut])
}

/// FNV-1a (64-bit) over a domain tag and the payload, folded to 4 bytes. Not a security
/// measure (zookies are not secret), only a guard against typos and foreign tokens.
fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in b"tessera.zookie".iter().chain(payload) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let folded = (h ^ (h >> 32)) as u32;
    folded.to_be_bytes()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    };
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            out.push((n >> (16 - 8 * i)) as u8);
        }
        // Canonical form only: the bits past the last produced byte must be zero.
        if chunk.len() < 4 && n & ((1u32 << (24 - 8 * produced)) - 1) != 0 {
            return None;
        }
    }
    Some(out)
}

/// How fresh the data of a request must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// A recent snapshot, possibly up to the chooser's staleness bound old (default for reads).
    #[default]
    MinimizeLatency,
    /// A snapshot at least as fresh as this revision (read-your-writes, the new-enemy guarantee).
    AtLeastAsFresh(Revision),
    /// Exactly this revision.
    AtExactSnapshot(Revision),
    /// The newest revision.
    FullyConsistent,
}

/// How stale a `MinimizeLatency` read may be by default.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(1);

/// Picks the revision a request reads at; shared by all requests of a server.
#[derive(Debug)]
pub struct SnapshotChooser {
    max_staleness: Duration,
    cached: Mutex<Option<(Revision, Instant)>>,
}

impl Default for SnapshotChooser {
    fn default() -> Self {
        SnapshotChooser::new(DEFAULT_MAX_STALENESS)
    }
}

impl SnapshotChooser {
    pub fn new(max_staleness: Duration) -> Self {
        SnapshotChooser {
            max_staleness,
            cached: Mutex::new(None),
        }
    }

    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    /// The shared recent revision, refreshed from the store's head when too old (or when
    /// garbage collection has moved past it).
    fn recent(&self, store: &dyn Store) -> Result<Revision, StoreError> {
        let mut cached = self.cached.lock();
        if let Some((rev, at)) = *cached
            && at.elapsed() <= self.max_staleness
            && rev >= store.oldest_readable_revision()?
        {
            return Ok(rev);
        }
        let head = store.head_revision()?;
        *cached = Some((head, Instant::now()));
        Ok(head)
    }

    /// Reads the head and shares it as the recent revision.
    fn refresh(&self, store: &dyn Store) -> Result<Revision, StoreError> {
        let head = store.head_revision()?;
        let mut cached = self.cached.lock();
        if cached.is_none_or(|(rev, _)| rev <= head) {
            *cached = Some((head, Instant::now()));
        }
        Ok(head)
    }

    /// The revision to read at under `consistency`.
    pub fn revision(
        &self,
        store: &dyn Store,
        consistency: Consistency,
    ) -> Result<Revision, StoreError> {
        match consistency {
            Consistency::MinimizeLatency => self.recent(store),
            Consistency::AtLeastAsFresh(wanted) => {
                let recent = self.recent(store)?;
                if wanted <= recent {
                    return Ok(recent);
                }
                let head = self.refresh(store)?;
                if wanted > head {
                    return Err(StoreError::RevisionInFuture {
                        requested: wanted,
                        head,
                    });
                }
                Ok(head)
            }
            Consistency::AtExactSnapshot(exact) => {
                let head = store.head_revision()?;
                if exact > head {
                    return Err(StoreError::RevisionInFuture {
                        requested: exact,
                        head,
                    });
                }
                let oldest = store.oldest_readable_revision()?;
                if exact < oldest {
                    return Err(StoreError::RevisionTooOld {
                        requested: exact,
                        oldest,
                    });
                }
                Ok(exact)
            }
            Consistency::FullyConsistent => self.refresh(store),
        }
    }

    /// The snapshot to read from under `consistency`.
    pub fn snapshot(
        &self,
        store: &dyn Store,
        consistency: Consistency,
    ) -> Result<Arc<dyn Snapshot>, StoreError> {
        store.snapshot(self.revision(store, consistency)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RelationshipFilter, RelationshipKey, SubjectFilter, Timestamp};
    use crate::store::{
        ChangeSet, DeleteByFilter, DeleteOutcome, RelationshipIter, SchemaCheck, StoredSchema,
        WriteTransaction,
    };
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    proptest! {
        #[test]
        fn zookies_round_trip(rev in any::<u64>()) {
            let z = Zookie::encode(Revision(rev));
            prop_assert!(z.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            prop_assert_eq!(Zookie::decode(&z), Ok(Revision(rev)));
        }

        #[test]
        fn garbage_never_panics(s in ".{0,40}") {
            let _ = Zookie::decode(&s);
        }

        #[test]
        fn base64_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(base64url_decode(&base64url_encode(&bytes)), Some(bytes));
        }

        /// Any single-character change is caught (by base64, version, structure or checksum).
        #[test]
        fn altered_zookies_are_refused(rev in any::<u64>(), pos in any::<prop::sample::Index>(), c in prop::sample::select(ALPHABET.to_vec())) {
            let z = Zookie::encode(Revision(rev));
            let i = pos.index(z.len());
            let mut altered = z.clone().into_bytes();
            prop_assume!(altered[i] != c);
            altered[i] = c;
            let altered = String::from_utf8(altered).unwrap();
            prop_assert!(Zookie::decode(&altered).is_err(), "{} -> {}", z, altered);
        }
    }

    #[test]
    fn zookies_are_compact() {
        assert!(Zookie::encode(Revision(1_000_000)).len() <= 12);
        assert!(Zookie::encode(Revision(u64::MAX)).len() <= 20);
        let z: Zookie = Zookie::encode(Revision(42)).parse().unwrap();
        assert_eq!(z.revision(), Revision(42));
        assert_eq!(z.to_string(), Zookie::encode(Revision(42)));
    }

    #[test]
    fn decode_errors_are_specific() {
        assert_eq!(Zookie::decode(""), Err(ZookieError::Empty));
        assert!(matches!(
            Zookie::decode("not a token!"),
            Err(ZookieError::Encoding { .. })
        ));
        let v2 = base64url_encode(&[2, 5, 0, 0, 0, 0]);
        assert!(matches!(
            Zookie::decode(&v2),
            Err(ZookieError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(
            Zookie::decode("AQ"),
            Err(ZookieError::Malformed { .. })
        ));
        let mut good = vec![1u8, 7];
        good.extend_from_slice(&checksum(&[1, 7]));
        good[2] ^= 1;
        assert!(matches!(
            Zookie::decode(&base64url_encode(&good)),
            Err(ZookieError::Checksum { .. })
        ));
        let long = "A".repeat(500);
        let err = Zookie::decode(&long).unwrap_err().to_string();
        assert!(err.len() < 120 && err.contains("malformed"), "{err}");
        // Overlong varints are refused even with a valid checksum.
        let mut body = vec![1u8, 0x80, 0x80, 0x00];
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        assert_eq!(Zookie::decode(&base64url_encode(&body)), Ok(Revision(0)));
        let mut body = vec![1u8];
        body.extend_from_slice(&[0xFF; 10]);
        body.push(0x01);
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        assert!(Zookie::decode(&base64url_encode(&body)).is_err());
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // "AR" and "AQ" decode to the same byte only if trailing bits are ignored.
        assert_eq!(base64url_decode("AQ"), Some(vec![1]));
        assert_eq!(base64url_decode("AR"), None);
        assert_eq!(base64url_decode("A"), None);
        assert_eq!(base64url_decode("AQ=="), None);
    }

    /// A store whose head and oldest revisions the test sets.
    #[derive(Default)]
    struct FakeStore {
        head: AtomicU64,
        oldest: AtomicU64,
        head_reads: AtomicU64,
    }

    struct FakeSnapshot(Revision);

    impl Snapshot for FakeSnapshot {
        fn revision(&self) -> Revision {
            self.0
        }
        fn now(&self) -> Timestamp {
            chrono::Utc::now()
        }
        fn query(
            &self,
            _: &RelationshipFilter,
            _: Option<&RelationshipKey>,
        ) -> Result<RelationshipIter<'_>, StoreError> {
            Ok(Box::new(std::iter::empty()))
        }
        fn reverse_query(
            &self,
            _: &SubjectFilter,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<RelationshipIter<'_>, StoreError> {
            Ok(Box::new(std::iter::empty()))
        }
        fn schema(&self) -> Result<Option<StoredSchema>, StoreError> {
            Ok(None)
        }
    }

    impl Store for FakeStore {
        fn head_revision(&self) -> Result<Revision, StoreError> {
            self.head_reads.fetch_add(1, Ordering::SeqCst);
            Ok(Revision(self.head.load(Ordering::SeqCst)))
        }
        fn oldest_readable_revision(&self) -> Result<Revision, StoreError> {
            Ok(Revision(self.oldest.load(Ordering::SeqCst)))
        }
        fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
            Ok(Arc::new(FakeSnapshot(revision)))
        }
        fn write(&self, _: WriteTransaction) -> Result<Revision, StoreError> {
            Err(StoreError::Backend("read-only fake".into()))
        }
        fn delete_by_filter(&self, _: DeleteByFilter) -> Result<DeleteOutcome, StoreError> {
            Err(StoreError::Backend("read-only fake".into()))
        }
        fn write_schema(
            &self,
            _: &str,
            _: SchemaCheck<'_>,
            _: Option<String>,
        ) -> Result<Revision, StoreError> {
            Err(StoreError::Backend("read-only fake".into()))
        }
        fn import(&self, _: crate::store::BulkImport) -> Result<Revision, StoreError> {
            Err(StoreError::Backend("read-only fake".into()))
        }
        fn read_changes(&self, _: Revision, _: usize) -> Result<Vec<ChangeSet>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn store(head: u64, oldest: u64) -> FakeStore {
        let s = FakeStore::default();
        s.head.store(head, Ordering::SeqCst);
        s.oldest.store(oldest, Ordering::SeqCst);
        s
    }

    #[test]
    fn minimize_latency_shares_a_recent_revision_within_the_staleness_bound() {
        let s = store(10, 0);
        let chooser = SnapshotChooser::new(Duration::from_secs(3600));
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(10))
        );
        s.head.store(12, Ordering::SeqCst);
        // Still the cached revision: requests within the bound share it.
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(10))
        );
        assert_eq!(s.head_reads.load(Ordering::SeqCst), 1);
        // A fully consistent read moves the shared revision forward.
        assert_eq!(
            chooser.revision(&s, Consistency::FullyConsistent),
            Ok(Revision(12))
        );
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(12))
        );
    }

    #[test]
    fn minimize_latency_refreshes_once_stale() {
        let s = store(10, 0);
        let chooser = SnapshotChooser::new(Duration::from_millis(20));
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(10))
        );
        s.head.store(11, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(11))
        );
    }

    #[test]
    fn minimize_latency_refreshes_when_gc_passed_the_cached_revision() {
        let s = store(10, 0);
        let chooser = SnapshotChooser::new(Duration::from_secs(3600));
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(10))
        );
        s.head.store(20, Ordering::SeqCst);
        s.oldest.store(15, Ordering::SeqCst);
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(20))
        );
    }

    #[test]
    fn at_least_as_fresh_never_reads_below_the_zookie() {
        let s = store(10, 0);
        let chooser = SnapshotChooser::new(Duration::from_secs(3600));
        assert_eq!(
            chooser.revision(&s, Consistency::MinimizeLatency),
            Ok(Revision(10))
        );
        assert_eq!(
            chooser.revision(&s, Consistency::AtLeastAsFresh(Revision(7))),
            Ok(Revision(10))
        );
        s.head.store(15, Ordering::SeqCst);
        // The cache is older than the zookie: the head is read, never the stale cache.
        assert_eq!(
            chooser.revision(&s, Consistency::AtLeastAsFresh(Revision(13))),
            Ok(Revision(15))
        );
        assert_eq!(
            chooser.revision(&s, Consistency::AtLeastAsFresh(Revision(16))),
            Err(StoreError::RevisionInFuture {
                requested: Revision(16),
                head: Revision(15)
            })
        );
    }

    #[test]
    fn at_exact_snapshot_is_exact_or_an_error() {
        let s = store(10, 4);
        let chooser = SnapshotChooser::default();
        assert_eq!(
            chooser.revision(&s, Consistency::AtExactSnapshot(Revision(6))),
            Ok(Revision(6))
        );
        assert_eq!(
            chooser.revision(&s, Consistency::AtExactSnapshot(Revision(3))),
            Err(StoreError::RevisionTooOld {
                requested: Revision(3),
                oldest: Revision(4)
            })
        );
        assert!(matches!(
            chooser.revision(&s, Consistency::AtExactSnapshot(Revision(11))),
            Err(StoreError::RevisionInFuture { .. })
        ));
        let snap = chooser
            .snapshot(&s, Consistency::AtExactSnapshot(Revision(5)))
            .unwrap();
        assert_eq!(snap.revision(), Revision(5));
    }

    #[test]
    fn fully_consistent_reads_the_head() {
        let s = store(3, 0);
        let chooser = SnapshotChooser::default();
        assert_eq!(
            chooser.revision(&s, Consistency::FullyConsistent),
            Ok(Revision(3))
        );
        s.head.store(4, Ordering::SeqCst);
        assert_eq!(
            chooser.revision(&s, Consistency::FullyConsistent),
            Ok(Revision(4))
        );
        assert_eq!(Consistency::default(), Consistency::MinimizeLatency);
    }
}
