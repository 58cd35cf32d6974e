//! What an evaluation read, for answers shared across revisions.
//!
//! A [`Recorder`] wraps an evaluation's [`SnapshotReader`] and passes every read through,
//! noting the [`ReadKey`] it names in the store's record of recent writes (`store/recent.rs`)
//! and, when asked, the earliest expiration among the relationships it returned. An answer
//! computed from the reads of a span of notes holds, at a later revision, while none of their
//! keys was written since (the record vouches for that) and until the earliest expiration
//! among them. Check runs note per sub-problem (spans nest: a sub-problem's notes are a suffix
//! of its parent's, and they track expiry themselves); a LookupResources plan or a
//! LookupSubjects result notes its whole evaluation.

use std::sync::Arc;

use super::cache::Made;
use crate::model::{Relationship, RelationshipFilter, Revision, SubjectFilter, Timestamp};
use crate::store::recent::{ReadKey, RecentWrites};
use crate::store::{ReversePage, SnapshotReader, StoreError};

/// An evaluation stops noting reads after this many (and its later answers answer their own
/// revision only): the notes of one evaluation are bounded whatever it evaluates.
const MAX_NOTED_READS: usize = 1 << 18;

/// A span of an evaluation's noted reads ([`Recorder::deps`]); `None` when they are not all
/// known.
pub(crate) type Reads = Option<(u32, u32)>;

/// An evaluation's reader, noting what each read depends on while its answers may be carried
/// across revisions; see the module docs.
pub(crate) struct Recorder<'e> {
    inner: Box<dyn SnapshotReader + 'e>,
    /// The record whose keys are noted; `None` when nothing is noted.
    recent: Option<&'e RecentWrites>,
    /// Every key noted so far, in order; a subtree's keys are a suffix from where it began.
    pub(crate) deps: Vec<ReadKey>,
    /// Set by a read that names no key: the current subtree's reads are not all known.
    pub(crate) lost: bool,
    /// The earliest expiration among the relationships read (whole: see `reverse_ids`), when
    /// asked for ([`Recorder::with_expiry`]; check runs track theirs per sub-problem).
    pub(crate) expires: Option<Timestamp>,
    track_expiry: bool,
    /// Reused to sort and deduplicate a span's keys.
    scratch: Vec<ReadKey>,
}

impl<'e> Recorder<'e> {
    /// Wraps `inner`; notes keys of `recent` when given.
    pub(crate) fn new(
        inner: Box<dyn SnapshotReader + 'e>,
        recent: Option<&'e RecentWrites>,
    ) -> Self {
        Recorder {
            inner,
            recent,
            // Enough for a typical check's reads without growing.
            deps: Vec::with_capacity(if recent.is_some() { 128 } else { 0 }),
            lost: false,
            expires: None,
            track_expiry: false,
            scratch: Vec::new(),
        }
    }

    /// Also tracks the earliest expiration among the relationships read ([`Recorder::expires`]).
    pub(crate) fn with_expiry(mut self) -> Self {
        self.track_expiry = true;
        self
    }

    pub(crate) fn noting(&self) -> bool {
        self.recent.is_some()
    }

    pub(crate) fn note(&mut self, key: Option<ReadKey>) {
        match key {
            Some(k) if self.deps.len() < MAX_NOTED_READS => self.deps.push(k),
            Some(_) => self.stop(),
            None => self.lost = true,
        }
    }

    /// Stops noting for the rest of the evaluation: what is computed from now on stays
    /// unknown.
    pub(crate) fn stop(&mut self) {
        self.recent = None;
        self.lost = true;
    }

    /// Notes again the keys of `span` (a sub-problem or a per-run read being reused), up to
    /// `limit` of them (a longer span is noted as lost).
    pub(crate) fn replay(&mut self, span: Reads, limit: usize) {
        if !self.noting() {
            return;
        }
        match span {
            Some((from, to)) if (to - from) as usize <= limit => {
                if self.deps.len() + (to - from) as usize > MAX_NOTED_READS {
                    return self.stop();
                }
                self.deps.extend_from_within(from as usize..to as usize);
            }
            _ => self.lost = true,
        }
    }

    /// The span of keys noted since `mark`, unless some were lost.
    pub(crate) fn span_since(&self, mark: usize, lost: bool) -> Reads {
        (self.noting() && !lost).then_some((mark as u32, self.deps.len() as u32))
    }

    /// The distinct keys of `span`, when there are at most `max` of them (checked after at
    /// most `4 × max` before deduplication).
    pub(crate) fn distinct(&mut self, span: Reads, max: usize) -> Option<Arc<[ReadKey]>> {
        let (from, to) = span?;
        let keys = &self.deps[from as usize..to as usize];
        if keys.len() > max * 4 {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(keys);
        self.scratch.sort_unstable();
        self.scratch.dedup();
        (self.scratch.len() <= max).then(|| Arc::from(&self.scratch[..]))
    }

    /// How a whole result made from every read so far was made, at `revision` and snapshot
    /// time `now`: its distinct keys (at most `max`, else unknown) and earliest expiration (the
    /// recorder must track it: [`Recorder::with_expiry`]).
    pub(crate) fn made(&mut self, revision: Revision, now: Timestamp, max: usize) -> Made {
        debug_assert!(
            self.track_expiry,
            "a whole result needs its earliest expiration"
        );
        let deps = if self.lost {
            None
        } else {
            let all = self.span_since(0, false);
            self.distinct(all, max)
        };
        Made {
            revision,
            computed_at: now,
            expires: self.expires,
            deps,
        }
    }

    fn returned(&mut self, rows: &[Relationship]) {
        if !self.track_expiry {
            return;
        }
        for r in rows {
            if let Some(e) = r.expiration {
                self.expires = Some(self.expires.map_or(e, |x| x.min(e)));
            }
        }
    }
}

impl SnapshotReader for Recorder<'_> {
    fn read(&mut self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError> {
        if let Some(r) = self.recent {
            self.note(r.read_key(filter));
        }
        let rows = self.inner.read(filter)?;
        self.returned(&rows);
        Ok(rows)
    }

    fn reverse(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: Option<ReversePage<'_>>,
    ) -> Result<Vec<Relationship>, StoreError> {
        if let Some(r) = self.recent {
            self.note(Some(r.reverse_key(subject, resource_type, relation)));
        }
        let rows = self.inner.reverse(subject, resource_type, relation, page)?;
        self.returned(&rows);
        Ok(rows)
    }

    /// Rows reduced to ids carry no expiration: a caller depending on when they expire must
    /// read them whole.
    fn reverse_ids(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: ReversePage<'_>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        if let Some(r) = self.recent {
            self.note(Some(r.reverse_key(subject, resource_type, relation)));
        }
        self.inner
            .reverse_ids(subject, resource_type, relation, page)
    }
}
