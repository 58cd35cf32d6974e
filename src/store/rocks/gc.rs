//! Garbage collection: advance the oldest readable revision and delete what no readable
//! revision can see.
//!
//! Work is driven by the change log, not by scanning data: every version that becomes
//! unreadable was superseded by a change recorded at some revision, so the keys named by the
//! change sets that fall out of the window are the only ones to revisit. Expired
//! relationships are found through the expiry index.
//!
//! Safety with concurrent readers: the in-memory oldest revision is raised *before* the
//! deletions are written, and readers check it *after* pinning their iterator's view.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use rocksdb::{WriteBatch, WriteOptions};

use crate::model::Revision;
use crate::store::StoreError;

use super::codec;
use super::keys;
use super::{CF_CHANGELOG, CF_EXPIRY, CF_FORWARD, CF_META, CF_REVERSE, Inner, backend};

/// Change-log entries folded into one GC batch (whole transactions; a batch may exceed it
/// by one transaction).
const CHANGES_PER_PASS: usize = 20_000;

/// Expired versions removed per GC batch.
const EXPIRED_PER_BATCH: usize = 10_000;

/// What one [`super::RocksStore::collect_garbage`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcStats {
    /// The oldest readable revision after the pass.
    pub oldest_readable: Revision,
    /// Relationship versions (superseded, tombstones, expired) removed.
    pub versions_removed: u64,
    /// Change-log entries (transactions) removed.
    pub change_sets_removed: u64,
    /// Schema versions removed.
    pub schemas_removed: u64,
}

/// The change sets of one GC step.
struct Window {
    /// The new oldest readable revision.
    edge: Revision,
    identities: BTreeSet<Vec<u8>>,
    change_sets: u64,
}

impl Inner {
    pub(super) fn collect_garbage(&self) -> Result<GcStats, StoreError> {
        let _only_one = self.gc_lock.lock();
        let now = self.options.clock.now();
        let window =
            chrono::Duration::from_std(self.options.gc_window).unwrap_or(chrono::Duration::MAX);
        let cutoff = now
            .checked_sub_signed(window)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let head = self.head();
        let mut stats = GcStats::default();
        while let Some(w) = self.next_window(cutoff, head)? {
            self.collect_window(w, &mut stats)?;
        }
        self.collect_expired(cutoff, &mut stats)?;
        stats.oldest_readable = self.oldest();
        Ok(stats)
    }

    /// Reads the next change sets committed at or before `cutoff` (and at or before `head`).
    fn next_window(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        head: Revision,
    ) -> Result<Option<Window>, StoreError> {
        let oldest = self.oldest();
        if oldest >= head {
            return Ok(None);
        }
        let log = self.cf(CF_CHANGELOG)?;
        let upper = keys::changelog_key(head.next(), 0).to_vec();
        let mut it = self
            .db
            .raw_iterator_cf_opt(log, Inner::scan_options(Some(upper)));
        it.seek(keys::changelog_key(oldest.next(), 0));
        let mut edge = None;
        let mut identities = BTreeSet::new();
        let mut change_sets = 0;
        let mut changes = 0;
        while changes < CHANGES_PER_PASS {
            let Some((k, v)) = it.item() else {
                it.status()
                    .map_err(|e| backend("reading the change log", e))?;
                break;
            };
            let (revision, chunk) = keys::decode_changelog_key(k)?;
            if chunk != 0 {
                return Err(StoreError::Corrupt(format!(
                    "change-log entry {revision} has no header"
                )));
            }
            let header = codec::decode_header(v)?;
            if header.committed_at > cutoff {
                break;
            }
            for _ in 0..header.chunks {
                it.next();
                let Some(v) = it.value() else {
                    return Err(StoreError::Corrupt(format!(
                        "change-log entry {revision} is truncated"
                    )));
                };
                for c in codec::decode_changes(v)? {
                    identities.insert(c.identity.to_vec());
                    changes += 1;
                }
            }
            edge = Some(revision);
            change_sets += 1;
            it.next();
        }
        Ok(edge.map(|edge| Window {
            edge,
            identities,
            change_sets,
        }))
    }

    /// Deletes what no revision at or after `w.edge` can see, then makes `w.edge` the oldest.
    fn collect_window(&self, w: Window, stats: &mut GcStats) -> Result<(), StoreError> {
        let fwd = self.cf(CF_FORWARD)?;
        let rev_cf = self.cf(CF_REVERSE)?;
        let exp = self.cf(CF_EXPIRY)?;
        let log = self.cf(CF_CHANGELOG)?;
        let meta = self.cf(CF_META)?;
        let previous = self.oldest();
        let mut batch = WriteBatch::default();

        let mut it = self.db.raw_iterator_cf_opt(fwd, Inner::point_options());
        for identity in &w.identities {
            it.seek(keys::version_seek_key(identity, Revision(u64::MAX)));
            // The newest version at or below the edge is what the edge sees: keep it unless it
            // is a tombstone; everything older is unreadable.
            let mut seen_visible = false;
            while let Some((k, v)) = it.item() {
                if k.len() != identity.len() + keys::VERSION_LEN || !k.starts_with(identity) {
                    break;
                }
                let (_, version) = keys::split_version(k)?;
                if version <= w.edge {
                    let attrs = codec::decode_version(v)?;
                    if seen_visible || attrs.is_none() {
                        batch.delete_cf(fwd, k);
                        let key = keys::decode_forward_identity(identity)?;
                        let mut rk = keys::reverse_identity(&key);
                        keys::put_version(&mut rk, version);
                        batch.delete_cf(rev_cf, rk);
                        if let Some(e) = attrs.as_ref().and_then(|a| a.expiration) {
                            batch.delete_cf(exp, keys::expiry_key(&e, k));
                        }
                        stats.versions_removed += 1;
                    }
                    seen_visible = true;
                }
                it.next();
            }
            it.status()
                .map_err(|e| backend("reading relationship versions", e))?;
        }
        drop(it);

        batch.delete_range_cf(
            log,
            keys::changelog_key(previous.next(), 0),
            keys::changelog_key(w.edge.next(), 0),
        );
        stats.change_sets_removed += w.change_sets;

        // Schema versions replaced at or before the edge.
        let obsolete: Vec<Revision> = {
            let schemas = self.schemas.read();
            let in_force = schemas.range(..=w.edge).next_back().map(|(r, _)| *r);
            schemas
                .range(..in_force.unwrap_or(Revision::ZERO))
                .map(|(r, _)| *r)
                .collect()
        };
        for r in &obsolete {
            batch.delete_cf(meta, keys::schema_key(*r));
        }
        batch.put_cf(meta, keys::META_OLDEST, codec::revision_bytes(w.edge));

        // Raise the bar before deleting (see the module docs).
        self.oldest.store(w.edge.0, Ordering::SeqCst);
        self.db
            .write_opt(batch, &WriteOptions::default())
            .map_err(|e| backend("writing garbage collection", e))?;
        let mut schemas = self.schemas.write();
        for r in &obsolete {
            schemas.remove(r);
        }
        stats.schemas_removed += obsolete.len() as u64;
        Ok(())
    }

    /// Removes relationships whose expiration is at or before `cutoff`, when no readable
    /// revision needs an older version of them.
    fn collect_expired(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        stats: &mut GcStats,
    ) -> Result<(), StoreError> {
        let fwd = self.cf(CF_FORWARD)?;
        let rev_cf = self.cf(CF_REVERSE)?;
        let exp = self.cf(CF_EXPIRY)?;
        let mut upper = Vec::new();
        keys::put_timestamp(&mut upper, &cutoff);
        // Strictly after every key whose expiration is exactly `cutoff`.
        let upper = keys::prefix_successor(&upper);
        let mut scan = self.db.raw_iterator_cf_opt(exp, Inner::scan_options(upper));
        scan.seek_to_first();
        let mut versions = self.db.raw_iterator_cf_opt(fwd, Inner::point_options());
        let oldest = self.oldest();
        loop {
            let mut batch = WriteBatch::default();
            let mut removed = 0;
            while removed < EXPIRED_PER_BATCH {
                let Some(k) = scan.key() else { break };
                let (_, forward_key) = keys::split_expiry_key(k)?;
                let (identity, version) = keys::split_version(forward_key)?;
                match Inner::newest_version(&mut versions, identity)? {
                    Some((newest, _)) if newest == version && version <= oldest => {
                        // Newest, and every older version was superseded at or before
                        // `oldest`, so collected already: nothing readable remains behind it.
                        batch.delete_cf(fwd, forward_key);
                        let key = keys::decode_forward_identity(identity)?;
                        let mut rk = keys::reverse_identity(&key);
                        keys::put_version(&mut rk, version);
                        batch.delete_cf(rev_cf, rk);
                        batch.delete_cf(exp, k);
                        removed += 1;
                    }
                    Some(_) => {
                        // Superseded (collected with its successor) or not yet old enough.
                        let still_there = self
                            .db
                            .get_pinned_cf(fwd, forward_key)
                            .map_err(|e| backend("reading a relationship version", e))?
                            .is_some();
                        if !still_there {
                            batch.delete_cf(exp, k);
                        }
                    }
                    None => batch.delete_cf(exp, k),
                }
                scan.next();
            }
            scan.status()
                .map_err(|e| backend("reading the expiry index", e))?;
            let done = scan.key().is_none();
            if !batch.is_empty() {
                self.db
                    .write_opt(batch, &WriteOptions::default())
                    .map_err(|e| backend("writing garbage collection", e))?;
            }
            stats.versions_removed += removed as u64;
            if done {
                return Ok(());
            }
        }
    }
}
