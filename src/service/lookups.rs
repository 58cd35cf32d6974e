//! Lookups between their pages: a node-local cache of suspended lookups, so a page of
//! LookupResources resumes the walk where the previous page left it instead of walking again,
//! and of LookupSubjects results, so later pages slice the result instead of computing it
//! again.
//!
//! Entries are keyed by the cursor's revision and the request's exact parameters (and, for
//! LookupResources, the id the page continues after): immutable facts about one snapshot, so
//! no entry can go stale, and a page served from the cache is the page a fresh computation at
//! that revision would give. A miss (another node, an evicted entry, a cursor from an earlier
//! process) only costs the computation again. Entries are dropped oldest first beyond
//! [`MAX_LOOKUP_ENTRIES`] entries or [`MAX_LOOKUP_WEIGHT`] (keys, streams, buffered ids and
//! subjects held, summed), and after [`LOOKUP_TTL`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::engine::{LookupSubject, SuspendedLookup};
use crate::model::Revision;

/// Most suspended lookups and subject lists a node keeps.
pub const MAX_LOOKUP_ENTRIES: usize = 256;
/// Most weight (materialized keys, streams, buffered ids, subjects) they hold together.
pub const MAX_LOOKUP_WEIGHT: usize = 4_000_000;
/// How long an entry waits for its next page.
pub const LOOKUP_TTL: Duration = Duration::from_secs(120);

/// The exact identity of a lookup request's parameters, the key of its entries: the parts
/// joined by a byte no name, id or JSON text contains unescaped.
pub fn request_key(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

/// What a cached entry holds.
enum Held {
    /// A LookupResources suspended after the id in its key.
    Resources(Box<SuspendedLookup>),
    /// The whole result of a LookupSubjects.
    Subjects(Arc<Vec<LookupSubject>>),
}

struct Entry {
    revision: Revision,
    /// The request's parameters, exactly (see [`request_key`]): a suspended lookup is only
    /// ever resumed by the request it was made for, never by one whose parameters merely hash
    /// alike.
    request: String,
    /// For `Resources`: the id the next page continues after.
    after: Option<String>,
    held: Held,
    weight: usize,
    stored: Instant,
}

/// The cache; see the module docs. Cheap to share.
#[derive(Default)]
pub struct LookupCache {
    entries: Mutex<VecDeque<Entry>>,
}

impl LookupCache {
    fn put(&self, entry: Entry) {
        if entry.weight > MAX_LOOKUP_WEIGHT {
            return;
        }
        let mut entries = self.entries.lock();
        entries.retain(|e| {
            !(e.revision == entry.revision && e.request == entry.request && e.after == entry.after)
        });
        entries.push_back(entry);
        let mut total: usize = entries.iter().map(|e| e.weight).sum();
        while entries.len() > MAX_LOOKUP_ENTRIES || total > MAX_LOOKUP_WEIGHT {
            match entries.pop_front() {
                Some(e) => total -= e.weight,
                None => break,
            }
        }
    }

    fn expire(entries: &mut VecDeque<Entry>) {
        let now = Instant::now();
        entries.retain(|e| now.duration_since(e.stored) < LOOKUP_TTL);
    }

    /// Keeps a LookupResources suspended after its last result, for the next page.
    pub fn put_resources(&self, revision: Revision, request: &str, lookup: SuspendedLookup) {
        let weight = lookup.weight();
        self.put(Entry {
            revision,
            request: request.to_string(),
            after: lookup.after().map(str::to_string),
            held: Held::Resources(Box::new(lookup)),
            weight,
            stored: Instant::now(),
        });
    }

    /// Takes the LookupResources suspended after `after` (each suspension serves one page).
    pub fn take_resources(
        &self,
        revision: Revision,
        request: &str,
        after: &str,
    ) -> Option<SuspendedLookup> {
        let mut entries = self.entries.lock();
        Self::expire(&mut entries);
        let at = entries.iter().position(|e| {
            e.revision == revision
                && e.request == request
                && e.after.as_deref() == Some(after)
                && matches!(e.held, Held::Resources(_))
        })?;
        match entries.remove(at)?.held {
            Held::Resources(lookup) => Some(*lookup),
            Held::Subjects(_) => None,
        }
    }

    /// Keeps the whole result of a LookupSubjects for its later pages.
    pub fn put_subjects(&self, revision: Revision, request: &str, all: Arc<Vec<LookupSubject>>) {
        let weight = all.iter().map(|s| 1 + s.excluded.len()).sum();
        self.put(Entry {
            revision,
            request: request.to_string(),
            after: None,
            held: Held::Subjects(all),
            weight,
            stored: Instant::now(),
        });
    }

    /// The whole result of a LookupSubjects, when kept.
    pub fn subjects(&self, revision: Revision, request: &str) -> Option<Arc<Vec<LookupSubject>>> {
        let mut entries = self.entries.lock();
        Self::expire(&mut entries);
        entries.iter().find_map(|e| match &e.held {
            Held::Subjects(all) if e.revision == revision && e.request == request => {
                Some(Arc::clone(all))
            }
            _ => None,
        })
    }

    /// How many entries are kept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CheckOutcome;

    #[test]
    fn entries_serve_only_their_exact_request_and_revision() {
        let cache = LookupCache::default();
        let all = Arc::new(vec![LookupSubject {
            subject_id: "alice".into(),
            outcome: CheckOutcome::Has,
            excluded: Vec::new(),
        }]);
        let mine = request_key(&["document:a", "view", "user", "...", "{}"]);
        cache.put_subjects(Revision(7), &mine, Arc::clone(&all));
        assert_eq!(cache.subjects(Revision(7), &mine).as_deref(), Some(&*all));
        // Another request, however its parameters hash, and another revision: no entry.
        let other = request_key(&["document:a", "view", "user", "...", r#"{"x":1}"#]);
        assert!(cache.subjects(Revision(7), &other).is_none());
        assert!(cache.subjects(Revision(8), &mine).is_none());
        // Parts cannot run into each other.
        assert_ne!(request_key(&["ab", "c"]), request_key(&["a", "bc"]));
    }
}
