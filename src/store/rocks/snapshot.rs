//! Reads at one revision: prefix scans over the forward and reverse indexes that pick, per
//! relationship, the newest version at or below the snapshot's revision.

use std::borrow::BorrowMut;
use std::sync::Arc;

use rocksdb::DBRawIterator;

use crate::model::{
    Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectFilter,
    SubjectRelationFilter, Timestamp,
};
use crate::store::{
    RelationshipIter, ReversePage, Snapshot, SnapshotReader, StoreError, StoredSchema,
};

use super::codec;
use super::keys;
use super::{CF_FORWARD, CF_REVERSE, Inner, backend};

/// Versions of one identity stepped over with `next` before falling back to a seek.
const NEXT_BEFORE_SEEK: usize = 4;

pub(crate) struct RocksSnapshot {
    inner: Arc<Inner>,
    revision: Revision,
    now: Timestamp,
    schema: Option<StoredSchema>,
}

type Predicate<'a> = Box<dyn Fn(&Relationship) -> bool + Send + 'a>;
type Decoder = fn(&[u8]) -> Result<RelationshipKey, StoreError>;

/// The encoded forward-key prefix every match of `f` starts with, and whether that prefix is
/// one whole identity (so the prefix bloom filter applies).
fn forward_prefix(f: &RelationshipFilter) -> (Vec<u8>, bool) {
    let mut p = Vec::new();
    let Some(t) = &f.resource_type else {
        return (p, false);
    };
    keys::put_str(&mut p, t);
    match (&f.resource_id, &f.resource_id_prefix) {
        (Some(id), _) => keys::put_str(&mut p, id),
        (None, Some(prefix)) => {
            keys::put_escaped(&mut p, prefix.as_bytes());
            return (p, false);
        }
        (None, None) => return (p, false),
    }
    let Some(rel) = &f.relation else {
        return (p, false);
    };
    keys::put_str(&mut p, rel);
    let Some(sf) = &f.subject else {
        return (p, false);
    };
    keys::put_str(&mut p, &sf.subject_type);
    let Some(sid) = &sf.subject_id else {
        return (p, false);
    };
    keys::put_str(&mut p, sid);
    match &sf.relation {
        SubjectRelationFilter::Any => (p, false),
        SubjectRelationFilter::Ellipsis => {
            keys::put_subject_relation(&mut p, None);
            (p, true)
        }
        SubjectRelationFilter::Relation(r) => {
            keys::put_subject_relation(&mut p, Some(r));
            (p, true)
        }
    }
}

/// Where a forward scan over `prefix` starts: for one whole identity, straight at its newest
/// version (versions sort newest first).
fn forward_start(prefix: &[u8], whole_identity: bool) -> Vec<u8> {
    if whole_identity {
        keys::version_seek_key(prefix, Revision(u64::MAX))
    } else {
        prefix.to_vec()
    }
}

/// The encoded reverse-key prefix of a reverse query.
fn reverse_prefix(
    s: &SubjectFilter,
    resource_type: Option<&str>,
    relation: Option<&str>,
) -> Vec<u8> {
    let mut p = Vec::new();
    keys::put_str(&mut p, &s.subject_type);
    let Some(id) = &s.subject_id else { return p };
    keys::put_str(&mut p, id);
    match &s.relation {
        SubjectRelationFilter::Any => return p,
        SubjectRelationFilter::Ellipsis => keys::put_subject_relation(&mut p, None),
        SubjectRelationFilter::Relation(r) => keys::put_subject_relation(&mut p, Some(r)),
    }
    let Some(t) = resource_type else { return p };
    keys::put_str(&mut p, t);
    if let Some(rel) = relation {
        keys::put_str(&mut p, rel);
    }
    p
}

impl RocksSnapshot {
    pub(crate) fn new(
        inner: Arc<Inner>,
        revision: Revision,
        now: Timestamp,
        schema: Option<StoredSchema>,
    ) -> Self {
        RocksSnapshot {
            inner,
            revision,
            now,
            schema,
        }
    }

    /// GC raises `oldest` before it deletes anything, so checking after the iterator has
    /// pinned its view proves the view still holds every version this revision needs.
    fn guard(&self) -> Result<(), StoreError> {
        let oldest = self.inner.oldest();
        if self.revision < oldest {
            return Err(StoreError::RevisionTooOld {
                requested: self.revision,
                oldest,
            });
        }
        Ok(())
    }

    /// Scans `cf` from `start` over keys starting with `prefix`.
    fn scan<'a>(
        &'a self,
        cf: &str,
        prefix: Vec<u8>,
        start: Vec<u8>,
        whole_identity: bool,
        decode: Decoder,
        predicate: Predicate<'a>,
    ) -> Result<Scan<'a, 'a>, StoreError> {
        let handle = self.inner.cf(cf)?;
        let opts = if whole_identity {
            Inner::point_options()
        } else {
            Inner::scan_options(keys::prefix_successor(&prefix))
        };
        let mut it = self.inner.db.raw_iterator_cf_opt(handle, opts);
        it.seek(&start);
        self.guard()?;
        Ok(Scan {
            it,
            prefix,
            single_identity: whole_identity,
            revision: self.revision,
            now: self.now,
            decode,
            predicate,
            finished: false,
            iterator_lifetime: std::marker::PhantomData,
        })
    }

    fn query_by_subject(
        &self,
        filter: &RelationshipFilter,
        subject: &SubjectFilter,
        after: Option<&RelationshipKey>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        // The reverse index finds them; sorting restores the documented query order.
        let prefix = reverse_prefix(subject, None, None);
        let f = filter.clone();
        let scan = self.scan(
            CF_REVERSE,
            prefix.clone(),
            prefix,
            false,
            keys::decode_reverse_identity,
            Box::new(move |r| f.matches(r)),
        )?;
        let mut all = scan.collect::<Result<Vec<_>, _>>()?;
        all.sort_by_cached_key(Relationship::key);
        if let Some(a) = after {
            all.retain(|r| r.key() > *a);
        }
        Ok(Box::new(all.into_iter().map(Ok)))
    }
}

impl Snapshot for RocksSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn query(
        &self,
        filter: &RelationshipFilter,
        after: Option<&RelationshipKey>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        if filter.resource_type.is_none()
            && let Some(subject) = &filter.subject
        {
            return self.query_by_subject(filter, subject, after);
        }
        let (prefix, whole) = forward_prefix(filter);
        let mut start = forward_start(&prefix, whole);
        if let Some(a) = after {
            let cursor = keys::forward_identity(a);
            if whole {
                // One identity: either it lies after the cursor or nothing does.
                if cursor >= prefix {
                    return Ok(Box::new(std::iter::empty()));
                }
            } else {
                let past = keys::after_all_versions(&cursor);
                if past > start {
                    start = past;
                }
            }
        }
        let f = filter.clone();
        let scan = self.scan(
            CF_FORWARD,
            prefix,
            start,
            whole,
            keys::decode_forward_identity,
            Box::new(move |r| f.matches(r)),
        )?;
        Ok(Box::new(scan))
    }

    fn reverse_query(
        &self,
        subject: &SubjectFilter,
        resource_type: Option<&str>,
        relation: Option<&str>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        let prefix = reverse_prefix(subject, resource_type, relation);
        let s = subject.clone();
        let rt = resource_type.map(str::to_string);
        let rel = relation.map(str::to_string);
        let scan = self.scan(
            CF_REVERSE,
            prefix.clone(),
            prefix,
            false,
            keys::decode_reverse_identity,
            Box::new(move |r| {
                s.matches(&r.subject)
                    && rt.as_ref().is_none_or(|t| *t == r.resource.object_type)
                    && rel.as_ref().is_none_or(|x| *x == r.relation)
            }),
        )?;
        Ok(Box::new(scan))
    }

    fn schema(&self) -> Result<Option<StoredSchema>, StoreError> {
        Ok(self.schema.clone())
    }

    fn reader(&self) -> Box<dyn SnapshotReader + '_> {
        Box::new(RocksReader {
            snapshot: self,
            point: None,
            range: None,
            reverse: None,
        })
    }
}

/// Reads of one evaluation sharing two forward-index iterators (one for single identities,
/// using the prefix bloom filter, one in total order for range scans), re-seeked per read.
/// Creating and destroying a RocksDB iterator per read cost more than the seek itself in the
/// server's check profile. Each iterator pins the database as it was when created, which is at
/// or after this snapshot's revision was committed, so it sees every version the snapshot needs;
/// the GC guard is checked after every seek, as for a fresh iterator.
struct RocksReader<'a> {
    snapshot: &'a RocksSnapshot,
    point: Option<DBRawIterator<'a>>,
    range: Option<DBRawIterator<'a>>,
    /// Over the reverse index, in total order.
    reverse: Option<DBRawIterator<'a>>,
}

impl SnapshotReader for RocksReader<'_> {
    fn read(&mut self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError> {
        if filter.resource_type.is_none() {
            // Subject-only filters go through the reverse index (sorted afterwards).
            return self.snapshot.query(filter, None)?.collect();
        }
        let snapshot = self.snapshot;
        let (prefix, whole) = forward_prefix(filter);
        let slot = if whole {
            &mut self.point
        } else {
            &mut self.range
        };
        let it = match slot {
            Some(it) => it,
            None => {
                let handle = snapshot.inner.cf(CF_FORWARD)?;
                let opts = if whole {
                    Inner::point_options()
                } else {
                    Inner::scan_options(None)
                };
                slot.insert(snapshot.inner.db.raw_iterator_cf_opt(handle, opts))
            }
        };
        it.seek(forward_start(&prefix, whole));
        snapshot.guard()?;
        let scan = Scan {
            it,
            prefix,
            single_identity: whole,
            revision: snapshot.revision,
            now: snapshot.now,
            decode: keys::decode_forward_identity,
            predicate: Box::new(|r| filter.matches(r)),
            finished: false,
            iterator_lifetime: std::marker::PhantomData,
        };
        scan.collect()
    }

    fn reverse(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: Option<ReversePage<'_>>,
    ) -> Result<Vec<Relationship>, StoreError> {
        let scan = self.reverse_scan(subject, resource_type, relation, page)?;
        match page {
            None => scan.collect(),
            Some(p) => p.apply(scan),
        }
    }

    fn reverse_ids(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: ReversePage<'_>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let exact = subject.subject_id.is_some() && subject.relation != SubjectRelationFilter::Any;
        if !exact {
            return Ok(crate::store::plain_ids(self.reverse(
                subject,
                resource_type,
                relation,
                Some(page),
            )?));
        }
        // The prefix pins everything but the resource id, so every row matches: decode only
        // the id (skipping five strings) instead of a whole relationship.
        let mut scan = self.reverse_scan(subject, resource_type, relation, Some(page))?;
        let mut out = Vec::new();
        while out.len() < page.limit {
            let row = scan.step_with(|identity, attrs| {
                Ok(Some((
                    keys::decode_reverse_resource_id(identity)?,
                    attrs.caveat.is_none(),
                )))
            })?;
            let Some(row) = row else { break };
            out.push(row);
        }
        Ok(out)
    }
}

impl<'a> RocksReader<'a> {
    /// A scan of the reverse index over `subject`'s rows on `resource_type#relation`, from
    /// the page's position (past every version of its `after` when the subject is exact).
    fn reverse_scan<'s, 'p>(
        &'s mut self,
        subject: &'p SubjectFilter,
        resource_type: &'p str,
        relation: &'p str,
        page: Option<ReversePage<'_>>,
    ) -> Result<Scan<'a, 'p, &'s mut DBRawIterator<'a>>, StoreError> {
        let snapshot = self.snapshot;
        let prefix = reverse_prefix(subject, Some(resource_type), Some(relation));
        // With one subject and subject relation the prefix ends at the resource id, so the
        // page starts past every version of `after`.
        let exact = subject.subject_id.is_some() && subject.relation != SubjectRelationFilter::Any;
        let start = match page.and_then(|p| p.after) {
            Some(after) if exact => {
                let mut identity = prefix.clone();
                keys::put_str(&mut identity, after);
                keys::after_all_versions(&identity)
            }
            _ => prefix.clone(),
        };
        if self.reverse.is_none() {
            let handle = snapshot.inner.cf(CF_REVERSE)?;
            self.reverse = Some(
                snapshot
                    .inner
                    .db
                    .raw_iterator_cf_opt(handle, Inner::scan_options(None)),
            );
        }
        let it = self.reverse.as_mut().expect("opened above");
        it.seek(&start);
        snapshot.guard()?;
        Ok(Scan {
            it,
            prefix,
            single_identity: false,
            revision: snapshot.revision,
            now: snapshot.now,
            decode: keys::decode_reverse_identity,
            predicate: Box::new(move |r| {
                subject.matches(&r.subject)
                    && r.resource.object_type == resource_type
                    && r.relation == relation
            }),
            finished: false,
            iterator_lifetime: std::marker::PhantomData,
        })
    }
}

/// A prefix scan yielding the relationships visible at one revision.
/// A scan over an owned iterator (`query`) or one borrowed from a [`RocksReader`].
struct Scan<'a, 'p, I: BorrowMut<DBRawIterator<'a>> = DBRawIterator<'a>> {
    it: I,
    prefix: Vec<u8>,
    /// The prefix is one whole identity: done after its visible version (and the iterator,
    /// in prefix mode, must not be moved to another prefix).
    single_identity: bool,
    revision: Revision,
    now: Timestamp,
    decode: Decoder,
    predicate: Predicate<'p>,
    finished: bool,
    iterator_lifetime: std::marker::PhantomData<&'a ()>,
}

impl<'a, I: BorrowMut<DBRawIterator<'a>>> Scan<'a, '_, I> {
    /// Moves past the remaining (older) versions of `identity`.
    fn skip_versions(&mut self, identity: &[u8]) {
        let it = self.it.borrow_mut();
        for _ in 0..NEXT_BEFORE_SEEK {
            it.next();
            match it.key() {
                Some(k) if k.starts_with(identity) => {}
                _ => return,
            }
        }
        it.seek(keys::after_all_versions(identity));
    }

    fn step(&mut self) -> Result<Option<Relationship>, StoreError> {
        let decode = self.decode;
        // The predicate is moved out for the call (the visitor may not borrow the scan).
        let predicate = std::mem::replace(&mut self.predicate, Box::new(|_| true));
        let found = self.step_with(|identity, attrs| {
            let rel = attrs.into_relationship(decode(identity)?);
            Ok(predicate(&rel).then_some(rel))
        });
        self.predicate = predicate;
        found
    }

    /// The next visible version's identity and attributes, as `visit` makes them: the one
    /// place that decides which versions a snapshot sees (not written after its revision,
    /// not deleted, not expired at its time). `visit` returns `None` to skip a row.
    fn step_with<T>(
        &mut self,
        mut visit: impl FnMut(&[u8], codec::Attributes) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let it = self.it.borrow_mut();
            let Some((key, value)) = it.item() else {
                it.status()
                    .map_err(|e| backend("reading relationships", e))?;
                return Ok(None);
            };
            if !key.starts_with(&self.prefix) {
                return Ok(None);
            }
            let (identity, version) = keys::split_version(key)?;
            if version > self.revision {
                // Written after this snapshot.
                it.next();
                continue;
            }
            let identity = identity.to_vec();
            let attrs = codec::decode_version(value)?;
            if self.single_identity {
                self.finished = true;
            } else {
                self.skip_versions(&identity);
            }
            let Some(attrs) = attrs else { continue };
            if attrs.is_expired_at(self.now) {
                continue;
            }
            if let Some(found) = visit(&identity, attrs)? {
                return Ok(Some(found));
            }
        }
    }
}

impl<'a, I: BorrowMut<DBRawIterator<'a>>> Iterator for Scan<'a, '_, I> {
    type Item = Result<Relationship, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.step() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}
