//! The synthetic benchmark dataset: a schema and relationships generated from a seed.
//!
//! The shape models a document store: users; groups nested up to `group_depth` levels (a group
//! of level `l > 0` is a member group of one group of level `l - 1`); a forest of folders
//! `folder_depth` levels deep (each non-root folder has one parent folder); documents in
//! folders with an owner and, at random, a direct viewer, a viewer group, an editor and (rarely)
//! a banned user. `view` is a union over direct grants, `edit`, and the parent folder's `view`
//! (an arrow), minus `banned` (an exclusion).
//!
//! Generation is a pure function of [`DatasetSpec`]: `bench load` writes it, and `bench run`
//! regenerates the same model from the same flags to know, without reading anything back,
//! which checks must be allowed and which denied.
//!
//! - The last `max(1, users / 20)` users are *outsiders*: they get no relationship at all, so
//!   every check for them is denied.
//! - Ids: users `u{n}`, groups `g{n}`, folders `f{n}`, documents `d{n}`.
//! - Deep-nesting chains (for `bench depth`) are separate: for depth `D`, groups
//!   `chain{D}-1 … chain{D}-D` where each is a member group of the previous one, the user
//!   `chainuser{D}` is a member of the deepest, and `document:chaindoc{D}` is viewable by
//!   `group:chain{D}-1#member`.
//!
//! Changing anything here changes the data for a seed: bump [`DATASET_VERSION`] when you do.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::BenchError;
use super::prng::SplitMix64;

/// The version of the generation algorithm; reported with results so that numbers from
/// different datasets are not compared by accident.
pub const DATASET_VERSION: u32 = 1;

/// The nesting depths of the chains `bench load` writes and `bench depth` measures.
pub const CHAIN_DEPTHS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// The user that no chain grants anything (the negative check of `bench depth`).
pub const CHAIN_OUTSIDER: &str = "chainoutsider";

/// The benchmark schema, in the `.zed` language.
pub const SCHEMA: &str = "\
definition user {}

definition group {
    relation member: user | group#member
}

definition folder {
    relation parent: folder
    relation editor: user | group#member
    relation viewer: user | group#member
    permission edit = editor + parent->edit
    permission view = viewer + edit + parent->view
}

definition document {
    relation parent: folder
    relation owner: user
    relation editor: user | group#member
    relation viewer: user | group#member
    relation banned: user
    permission edit = owner + editor + parent->edit
    permission view = (viewer + edit + parent->view) - banned
}
";

// Probabilities of the optional grants (fixed: part of the dataset definition).
const FOLDER_VIEWER_USER: f64 = 0.1;
const FOLDER_VIEWER_GROUP: f64 = 0.5;
const FOLDER_EDITOR_USER: f64 = 0.2;
const DOC_VIEWER_USER: f64 = 0.5;
const DOC_VIEWER_GROUP: f64 = 0.3;
const DOC_EDITOR_USER: f64 = 0.1;
const DOC_BANNED: f64 = 0.01;

/// The sizes and seed that determine a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// The generation algorithm ([`DATASET_VERSION`]).
    pub version: u32,
    pub seed: u64,
    pub users: u32,
    pub groups: u32,
    /// Levels of group nesting (1: no nested groups).
    pub group_depth: u32,
    pub folders: u32,
    /// Levels of the folder tree (1: only root folders).
    pub folder_depth: u32,
    pub documents: u32,
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec {
            version: DATASET_VERSION,
            seed: 42,
            users: 10_000,
            groups: 1_000,
            group_depth: 4,
            folders: 5_000,
            folder_depth: 5,
            documents: 100_000,
        }
    }
}

/// Upper bound of every size: ids stay `u32` and the model fits in memory.
const MAX_SIZE: u32 = 100_000_000;

impl DatasetSpec {
    /// Refuses sizes the generator cannot honour.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad =
            |what: &str, reason: &str| Err(BenchError::Dataset(format!("`--{what}` {reason}")));
        if self.version != DATASET_VERSION {
            return Err(BenchError::Dataset(format!(
                "dataset version {} is not supported (this build generates version {DATASET_VERSION})",
                self.version
            )));
        }
        if self.users < 2 {
            return bad("users", "must be at least 2 (one of them is an outsider)");
        }
        for (name, value) in [
            ("users", self.users),
            ("groups", self.groups),
            ("folders", self.folders),
            ("documents", self.documents),
        ] {
            if value == 0 {
                return bad(name, "must be at least 1");
            }
            if value > MAX_SIZE {
                return bad(name, "must be at most 100000000");
            }
        }
        if !(1..=64).contains(&self.group_depth) {
            return bad("group-depth", "must be between 1 and 64");
        }
        if !(1..=64).contains(&self.folder_depth) {
            return bad("folder-depth", "must be between 1 and 64");
        }
        Ok(())
    }
}

/// One relationship of the dataset, in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    pub resource_type: &'static str,
    pub resource_id: String,
    pub relation: &'static str,
    pub subject_type: &'static str,
    pub subject_id: String,
    /// `Some("member")` for a `group#member` subject set.
    pub subject_relation: Option<&'static str>,
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}#{}@{}:{}",
            self.resource_type, self.resource_id, self.relation, self.subject_type, self.subject_id
        )?;
        if let Some(r) = self.subject_relation {
            write!(f, "#{r}")?;
        }
        Ok(())
    }
}

fn tuple(
    resource_type: &'static str,
    resource_id: String,
    relation: &'static str,
    subject_type: &'static str,
    subject_id: String,
    subject_relation: Option<&'static str>,
) -> Tuple {
    Tuple {
        resource_type,
        resource_id,
        relation,
        subject_type,
        subject_id,
        subject_relation,
    }
}

/// The id of user `n`.
pub fn user_id(n: u32) -> String {
    format!("u{n}")
}
/// The id of group `n`.
pub fn group_id(n: u32) -> String {
    format!("g{n}")
}
/// The id of folder `n`.
pub fn folder_id(n: u32) -> String {
    format!("f{n}")
}
/// The id of document `n`.
pub fn document_id(n: u32) -> String {
    format!("d{n}")
}

/// The number in an id of the form `{prefix}{n}` (no sign, no leading `+`).
fn parse_id(id: &str, prefix: &str) -> Option<u32> {
    let digits = id.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The id of the chain group at `level` (1-based) of the chain of `depth`.
pub fn chain_group_id(depth: u32, level: u32) -> String {
    format!("chain{depth}-{level}")
}
/// The document at the top of the chain of `depth`.
pub fn chain_document_id(depth: u32) -> String {
    format!("chaindoc{depth}")
}
/// The user at the bottom of the chain of `depth`.
pub fn chain_user_id(depth: u32) -> String {
    format!("chainuser{depth}")
}

/// The relationships of the deep-nesting chains of the given depths.
pub fn chain_relationships(depths: &[u32]) -> Vec<Tuple> {
    let mut out = Vec::new();
    for &depth in depths {
        out.push(tuple(
            "document",
            chain_document_id(depth),
            "viewer",
            "group",
            chain_group_id(depth, 1),
            Some("member"),
        ));
        for level in 1..depth {
            out.push(tuple(
                "group",
                chain_group_id(depth, level),
                "member",
                "group",
                chain_group_id(depth, level + 1),
                Some("member"),
            ));
        }
        out.push(tuple(
            "group",
            chain_group_id(depth, depth),
            "member",
            "user",
            chain_user_id(depth),
            None,
        ));
    }
    out
}

/// One document of the model (user, group and folder numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Doc {
    parent: u32,
    owner: u32,
    viewer_user: Option<u32>,
    viewer_group: Option<u32>,
    editor_user: Option<u32>,
    banned: Option<u32>,
}

/// Which path a check sample exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKind {
    /// The user is the document's direct viewer, editor or owner.
    Direct,
    /// The user is a member of a group nested under the document's viewer group.
    NestedGroup,
    /// The user is a viewer or editor of one of the document's ancestor folders.
    FolderParent,
    /// The user has no access (an outsider, or banned from the document).
    Negative,
}

impl CheckKind {
    /// Every kind, in report order.
    pub const ALL: [CheckKind; 4] = [
        CheckKind::Direct,
        CheckKind::NestedGroup,
        CheckKind::FolderParent,
        CheckKind::Negative,
    ];

    /// The name used in mixes and reports (`direct`, `nested_group`, …).
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Direct => "direct",
            CheckKind::NestedGroup => "nested_group",
            CheckKind::FolderParent => "folder_parent",
            CheckKind::Negative => "negative",
        }
    }
}

/// A fixed set of checks per kind, drawn once from the dataset: a workload whose checks repeat
/// (a list view or a dashboard re-checked by its users) instead of spreading over everything.
#[derive(Debug, Clone)]
pub struct HotChecks {
    by_kind: Vec<Vec<CheckSample>>,
}

impl HotChecks {
    /// One of the set's checks of `kind`.
    pub fn pick(&self, kind: CheckKind, rng: &mut SplitMix64) -> CheckSample {
        let set = &self.by_kind[kind as usize];
        set[rng.below_u32(set.len() as u32) as usize]
    }
}

/// A check `document:d{document}#view@user:u{user}` with its known answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSample {
    pub kind: CheckKind,
    pub document: u32,
    pub user: u32,
    pub expected: bool,
}

/// The in-memory model of a generated dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    spec: DatasetSpec,
    /// Users `0..regular_users` may get grants; the rest are outsiders.
    regular_users: u32,
    group_parent: Vec<Option<u32>>,
    group_children: Vec<Vec<u32>>,
    group_members: Vec<Vec<u32>>,
    folder_parent: Vec<Option<u32>>,
    folder_viewer_user: Vec<Option<u32>>,
    folder_viewer_group: Vec<Option<u32>>,
    folder_editor_user: Vec<Option<u32>>,
    docs: Vec<Doc>,
    /// Documents with a viewer group, for nested-group samples.
    docs_with_group: Vec<u32>,
    /// Documents with a banned user, for negative samples.
    banned_docs: Vec<u32>,
    /// Per banned user, the documents they are banned from.
    banned_by_user: HashMap<u32, Vec<u32>>,
}

/// An index at `level` among `0..count` where items are assigned levels round-robin
/// (`item % depth == level`).
fn pick_at_level(rng: &mut SplitMix64, count: u32, depth: u32, level: u32) -> u32 {
    // Items of `level`: level, level + depth, … below count.
    let n = (count - level).div_ceil(depth);
    level + depth * rng.below_u32(n)
}

impl Dataset {
    /// Generates the model for `spec` (validated first).
    pub fn generate(spec: DatasetSpec) -> Result<Dataset, BenchError> {
        spec.validate()?;
        let mut rng = SplitMix64::new(spec.seed);
        let outsiders = (spec.users / 20).max(1);
        let regular = spec.users - outsiders;

        // Groups: a level each, a parent one level up, and direct user members.
        let g = spec.groups;
        let members_per_group = (regular.saturating_mul(2) / g).clamp(1, regular);
        let mut group_parent = Vec::with_capacity(g as usize);
        let mut group_children = vec![Vec::new(); g as usize];
        let mut group_members = Vec::with_capacity(g as usize);
        for id in 0..g {
            let level = id % spec.group_depth;
            let parent =
                (level > 0).then(|| pick_at_level(&mut rng, g, spec.group_depth, level - 1));
            if let Some(p) = parent {
                group_children[p as usize].push(id);
            }
            group_parent.push(parent);
            let mut members: Vec<u32> = (0..members_per_group)
                .map(|_| rng.below_u32(regular))
                .collect();
            members.sort_unstable();
            members.dedup();
            group_members.push(members);
        }

        // Folders: a forest; every root folder has a viewer so that every document has a
        // positive folder-parent check.
        let f = spec.folders;
        let mut folder_parent = Vec::with_capacity(f as usize);
        let mut folder_viewer_user = Vec::with_capacity(f as usize);
        let mut folder_viewer_group = Vec::with_capacity(f as usize);
        let mut folder_editor_user = Vec::with_capacity(f as usize);
        for id in 0..f {
            let level = id % spec.folder_depth;
            folder_parent.push(
                (level > 0).then(|| pick_at_level(&mut rng, f, spec.folder_depth, level - 1)),
            );
            let viewer = level == 0 || rng.chance(FOLDER_VIEWER_USER);
            folder_viewer_user.push(viewer.then(|| rng.below_u32(regular)));
            folder_viewer_group.push(rng.chance(FOLDER_VIEWER_GROUP).then(|| rng.below_u32(g)));
            folder_editor_user.push(
                rng.chance(FOLDER_EDITOR_USER)
                    .then(|| rng.below_u32(regular)),
            );
        }

        let mut docs = Vec::with_capacity(spec.documents as usize);
        let mut docs_with_group = Vec::new();
        let mut banned_docs = Vec::new();
        let mut banned_by_user: HashMap<u32, Vec<u32>> = HashMap::new();
        for id in 0..spec.documents {
            let parent = rng.below_u32(f);
            let owner = rng.below_u32(regular);
            let viewer_user = rng.chance(DOC_VIEWER_USER).then(|| rng.below_u32(regular));
            let viewer_group = rng.chance(DOC_VIEWER_GROUP).then(|| rng.below_u32(g));
            let editor_user = rng.chance(DOC_EDITOR_USER).then(|| rng.below_u32(regular));
            let banned = rng.chance(DOC_BANNED).then(|| rng.below_u32(regular));
            if viewer_group.is_some() {
                docs_with_group.push(id);
            }
            if let Some(b) = banned {
                banned_docs.push(id);
                banned_by_user.entry(b).or_default().push(id);
            }
            docs.push(Doc {
                parent,
                owner,
                viewer_user,
                viewer_group,
                editor_user,
                banned,
            });
        }
        // Tiny datasets may draw no group grant at all; nested-group samples need one.
        if docs_with_group.is_empty() {
            docs[0].viewer_group = Some(0);
            docs_with_group.push(0);
        }

        Ok(Dataset {
            spec,
            regular_users: regular,
            group_parent,
            group_children,
            group_members,
            folder_parent,
            folder_viewer_user,
            folder_viewer_group,
            folder_editor_user,
            docs,
            docs_with_group,
            banned_docs,
            banned_by_user,
        })
    }

    /// The spec this model was generated from.
    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    /// Whether user `n` is an outsider (has no relationship at all).
    pub fn is_outsider(&self, user: u32) -> bool {
        user >= self.regular_users
    }

    /// How many relationships [`Dataset::relationships`] yields.
    pub fn relationship_count(&self) -> u64 {
        let some = |v: &[Option<u32>]| v.iter().filter(|x| x.is_some()).count() as u64;
        let groups: u64 = self
            .group_members
            .iter()
            .map(|m| m.len() as u64)
            .sum::<u64>()
            + some(&self.group_parent);
        let folders = some(&self.folder_parent)
            + some(&self.folder_viewer_user)
            + some(&self.folder_viewer_group)
            + some(&self.folder_editor_user);
        let docs: u64 = self
            .docs
            .iter()
            .map(|d| {
                2 + u64::from(d.viewer_user.is_some())
                    + u64::from(d.viewer_group.is_some())
                    + u64::from(d.editor_user.is_some())
                    + u64::from(d.banned.is_some())
            })
            .sum();
        groups + folders + docs
    }

    /// Every relationship of the dataset: groups, then folders, then documents.
    pub fn relationships(&self) -> impl Iterator<Item = Tuple> + '_ {
        let groups = (0..self.spec.groups).flat_map(move |id| {
            let i = id as usize;
            let mut out = Vec::with_capacity(self.group_members[i].len() + 1);
            if let Some(p) = self.group_parent[i] {
                out.push(tuple(
                    "group",
                    group_id(p),
                    "member",
                    "group",
                    group_id(id),
                    Some("member"),
                ));
            }
            for &m in &self.group_members[i] {
                out.push(tuple(
                    "group",
                    group_id(id),
                    "member",
                    "user",
                    user_id(m),
                    None,
                ));
            }
            out
        });
        let folders = (0..self.spec.folders).flat_map(move |id| {
            let i = id as usize;
            let mut out = Vec::with_capacity(4);
            if let Some(p) = self.folder_parent[i] {
                out.push(tuple(
                    "folder",
                    folder_id(id),
                    "parent",
                    "folder",
                    folder_id(p),
                    None,
                ));
            }
            if let Some(u) = self.folder_viewer_user[i] {
                out.push(tuple(
                    "folder",
                    folder_id(id),
                    "viewer",
                    "user",
                    user_id(u),
                    None,
                ));
            }
            if let Some(gr) = self.folder_viewer_group[i] {
                out.push(tuple(
                    "folder",
                    folder_id(id),
                    "viewer",
                    "group",
                    group_id(gr),
                    Some("member"),
                ));
            }
            if let Some(u) = self.folder_editor_user[i] {
                out.push(tuple(
                    "folder",
                    folder_id(id),
                    "editor",
                    "user",
                    user_id(u),
                    None,
                ));
            }
            out
        });
        let docs = self.docs.iter().enumerate().flat_map(|(i, d)| {
            let id = document_id(i as u32);
            let mut out = Vec::with_capacity(6);
            out.push(tuple(
                "document",
                id.clone(),
                "parent",
                "folder",
                folder_id(d.parent),
                None,
            ));
            out.push(tuple(
                "document",
                id.clone(),
                "owner",
                "user",
                user_id(d.owner),
                None,
            ));
            if let Some(u) = d.viewer_user {
                out.push(tuple(
                    "document",
                    id.clone(),
                    "viewer",
                    "user",
                    user_id(u),
                    None,
                ));
            }
            if let Some(gr) = d.viewer_group {
                out.push(tuple(
                    "document",
                    id.clone(),
                    "viewer",
                    "group",
                    group_id(gr),
                    Some("member"),
                ));
            }
            if let Some(u) = d.editor_user {
                out.push(tuple(
                    "document",
                    id.clone(),
                    "editor",
                    "user",
                    user_id(u),
                    None,
                ));
            }
            if let Some(u) = d.banned {
                out.push(tuple("document", id, "banned", "user", user_id(u), None));
            }
            out
        });
        groups.chain(folders).chain(docs)
    }

    fn doc(&self, n: u32) -> &Doc {
        &self.docs[n as usize]
    }

    /// A check of `kind` with its known answer. Positive kinds answer `true` unless the drawn
    /// user happens to be banned from the document (rare; then the expectation is `false`).
    /// `per_kind` checks of each kind, drawn from a stream of `seed` (the same set for the
    /// same dataset and seed).
    pub fn hot_checks(&self, per_kind: u32, seed: u64) -> HotChecks {
        let mut rng = SplitMix64::stream(seed, 0x40_7c4e);
        HotChecks {
            by_kind: CheckKind::ALL
                .iter()
                .map(|&kind| {
                    (0..per_kind.max(1))
                        .map(|_| self.sample_check(kind, &mut rng))
                        .collect()
                })
                .collect(),
        }
    }

    pub fn sample_check(&self, kind: CheckKind, rng: &mut SplitMix64) -> CheckSample {
        // A few draws to avoid the rare banned user; the last draw is kept either way, with
        // the expectation that is correct for it.
        let mut last = self.draw_check(kind, rng);
        for _ in 0..8 {
            if last.expected || kind == CheckKind::Negative {
                break;
            }
            last = self.draw_check(kind, rng);
        }
        last
    }

    fn draw_check(&self, kind: CheckKind, rng: &mut SplitMix64) -> CheckSample {
        let docs = self.spec.documents;
        let positive = |document: u32, user: u32| CheckSample {
            kind,
            document,
            user,
            expected: self.doc(document).banned != Some(user),
        };
        match kind {
            CheckKind::Direct => {
                let document = rng.below_u32(docs);
                let d = self.doc(document);
                let user = d.viewer_user.or(d.editor_user).unwrap_or(d.owner);
                positive(document, user)
            }
            CheckKind::NestedGroup => {
                let pick = rng.below_u32(self.docs_with_group.len() as u32) as usize;
                let document = self.docs_with_group[pick];
                let mut group = self.doc(document).viewer_group.unwrap_or(0);
                // Walk down to a leaf group, so the grant goes through every nesting level.
                loop {
                    let children = &self.group_children[group as usize];
                    if children.is_empty() {
                        break;
                    }
                    group = children[rng.below_u32(children.len() as u32) as usize];
                }
                let members = &self.group_members[group as usize];
                let user = members[rng.below_u32(members.len() as u32) as usize];
                positive(document, user)
            }
            CheckKind::FolderParent => {
                let document = rng.below_u32(docs);
                let mut candidates = Vec::new();
                let mut folder = Some(self.doc(document).parent);
                while let Some(f) = folder {
                    let i = f as usize;
                    candidates.extend(self.folder_viewer_user[i]);
                    candidates.extend(self.folder_editor_user[i]);
                    folder = self.folder_parent[i];
                }
                // Root folders always have a viewer, so `candidates` is never empty.
                let user = if candidates.is_empty() {
                    self.doc(document).owner
                } else {
                    candidates[rng.below_u32(candidates.len() as u32) as usize]
                };
                positive(document, user)
            }
            CheckKind::Negative => {
                if !self.banned_docs.is_empty() && rng.chance(0.25) {
                    let pick = rng.below_u32(self.banned_docs.len() as u32) as usize;
                    let document = self.banned_docs[pick];
                    let user = self.doc(document).banned.unwrap_or(self.regular_users);
                    CheckSample {
                        kind,
                        document,
                        user,
                        expected: false,
                    }
                } else {
                    let document = rng.below_u32(docs);
                    let outsiders = self.spec.users - self.regular_users;
                    let user = self.regular_users + rng.below_u32(outsiders);
                    CheckSample {
                        kind,
                        document,
                        user,
                        expected: false,
                    }
                }
            }
        }
    }

    /// A user and one document they can certainly view (a direct grant), for lookups.
    pub fn sample_positive(&self, rng: &mut SplitMix64) -> CheckSample {
        let mut sample = self.sample_check(CheckKind::Direct, rng);
        for _ in 0..32 {
            if sample.expected {
                break;
            }
            sample = self.sample_check(CheckKind::Direct, rng);
        }
        sample
    }

    /// The exact answers of lookups over this dataset: who views what (see [`LookupModel`]).
    /// Builds inverted indexes over the whole model (a few hundred milliseconds at the default
    /// sizes), so build it once and ask it many questions.
    pub fn lookup_model(&self) -> LookupModel<'_> {
        LookupModel::new(self)
    }

    /// Checks a LookupResources(`document`, `view`, `user:u{sample.user}`) answer: it must hold
    /// the sample's document when that is a positive, only valid document ids, and none of the
    /// documents the user is banned from. Returns why it is wrong.
    pub fn verify_lookup_resources<'a>(
        &self,
        sample: &CheckSample,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let banned = self.banned_by_user.get(&sample.user);
        let mut found = false;
        for id in ids {
            let Some(n) = parse_id(id, "d").filter(|n| *n < self.spec.documents) else {
                return Err(format!("unexpected resource `document:{id}`"));
            };
            if banned.is_some_and(|b| b.contains(&n)) {
                return Err(format!(
                    "`user:{}` is banned from `document:{id}` but it was returned",
                    user_id(sample.user)
                ));
            }
            found |= n == sample.document;
        }
        if sample.expected && !found {
            return Err(format!(
                "`document:{}` is missing (viewable by `user:{}`)",
                document_id(sample.document),
                user_id(sample.user)
            ));
        }
        Ok(())
    }

    /// Checks a LookupSubjects(`document:d{sample.document}`, `view`, `user`) answer: it must
    /// hold the sample's user when that is a positive, only valid user ids, no outsider and
    /// not the document's banned user.
    pub fn verify_lookup_subjects<'a>(
        &self,
        sample: &CheckSample,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let banned = self.doc(sample.document).banned;
        let mut found = false;
        for id in ids {
            let Some(n) = parse_id(id, "u").filter(|n| *n < self.spec.users) else {
                return Err(format!("unexpected subject `user:{id}`"));
            };
            if self.is_outsider(n) {
                return Err(format!("outsider `user:{id}` was returned"));
            }
            if banned == Some(n) {
                return Err(format!("banned `user:{id}` was returned"));
            }
            found |= n == sample.user;
        }
        if sample.expected && !found {
            return Err(format!(
                "`user:{}` is missing (can view `document:{}`)",
                user_id(sample.user),
                document_id(sample.document)
            ));
        }
        Ok(())
    }
}

/// The exact answers of `document#view` lookups, computed from the model: which documents a
/// user can view (LookupResources) and which users can view a document (LookupSubjects). The
/// schema's semantics, written out for this dataset's shape: a user views a document when they
/// own, edit or view it (directly or through a group they are a member of, nested groups
/// included), or view or edit one of its ancestor folders, unless they are banned from it.
#[derive(Debug)]
pub struct LookupModel<'d> {
    dataset: &'d Dataset,
    /// Per user: the groups they are a direct member of.
    user_groups: Vec<Vec<u32>>,
    /// Per folder: its child folders and its documents.
    folder_children: Vec<Vec<u32>>,
    folder_docs: Vec<Vec<u32>>,
    /// Per user: documents they own, edit or view directly; folders they edit or view directly.
    user_docs: Vec<Vec<u32>>,
    user_folders: Vec<Vec<u32>>,
    /// Per group: documents and folders it is the viewer group of.
    group_docs: Vec<Vec<u32>>,
    group_folders: Vec<Vec<u32>>,
}

impl<'d> LookupModel<'d> {
    fn new(d: &'d Dataset) -> LookupModel<'d> {
        let users = d.spec.users as usize;
        let groups = d.spec.groups as usize;
        let folders = d.spec.folders as usize;
        let mut m = LookupModel {
            dataset: d,
            user_groups: vec![Vec::new(); users],
            folder_children: vec![Vec::new(); folders],
            folder_docs: vec![Vec::new(); folders],
            user_docs: vec![Vec::new(); users],
            user_folders: vec![Vec::new(); users],
            group_docs: vec![Vec::new(); groups],
            group_folders: vec![Vec::new(); groups],
        };
        for (g, members) in d.group_members.iter().enumerate() {
            for &u in members {
                m.user_groups[u as usize].push(g as u32);
            }
        }
        for f in 0..folders {
            if let Some(p) = d.folder_parent[f] {
                m.folder_children[p as usize].push(f as u32);
            }
            for u in [d.folder_viewer_user[f], d.folder_editor_user[f]]
                .into_iter()
                .flatten()
            {
                m.user_folders[u as usize].push(f as u32);
            }
            if let Some(g) = d.folder_viewer_group[f] {
                m.group_folders[g as usize].push(f as u32);
            }
        }
        for (n, doc) in d.docs.iter().enumerate() {
            let n = n as u32;
            m.folder_docs[doc.parent as usize].push(n);
            for u in [Some(doc.owner), doc.viewer_user, doc.editor_user]
                .into_iter()
                .flatten()
            {
                m.user_docs[u as usize].push(n);
            }
            if let Some(g) = doc.viewer_group {
                m.group_docs[g as usize].push(n);
            }
        }
        m
    }

    /// The groups `user` is a member of, directly or through nested groups.
    fn groups_of(&self, user: u32) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for &g in &self.user_groups[user as usize] {
            let mut at = Some(g);
            while let Some(g) = at {
                if out.contains(&g) {
                    break;
                }
                out.push(g);
                at = self.dataset.group_parent[g as usize];
            }
        }
        out
    }

    /// The documents `user` can view, ascending.
    pub fn viewable_documents(&self, user: u32) -> Vec<u32> {
        if self.dataset.is_outsider(user) {
            return Vec::new();
        }
        let groups = self.groups_of(user);
        let mut docs: Vec<u32> = self.user_docs[user as usize].clone();
        let mut folders: Vec<u32> = self.user_folders[user as usize].clone();
        for &g in &groups {
            docs.extend(&self.group_docs[g as usize]);
            folders.extend(&self.group_folders[g as usize]);
        }
        // Viewing (or editing) a folder extends to its whole subtree.
        let mut seen = vec![false; self.folder_docs.len()];
        while let Some(f) = folders.pop() {
            if std::mem::replace(&mut seen[f as usize], true) {
                continue;
            }
            docs.extend(&self.folder_docs[f as usize]);
            folders.extend(&self.folder_children[f as usize]);
        }
        docs.sort_unstable();
        docs.dedup();
        if let Some(banned) = self.dataset.banned_by_user.get(&user) {
            docs.retain(|n| !banned.contains(n));
        }
        docs
    }

    /// The users who can view `document`, ascending.
    pub fn document_viewers(&self, document: u32) -> Vec<u32> {
        let d = self.dataset;
        let doc = d.doc(document);
        let mut users: Vec<u32> = [Some(doc.owner), doc.viewer_user, doc.editor_user]
            .into_iter()
            .flatten()
            .collect();
        let mut groups: Vec<u32> = doc.viewer_group.into_iter().collect();
        let mut folder = Some(doc.parent);
        while let Some(f) = folder {
            let i = f as usize;
            users.extend(d.folder_viewer_user[i]);
            users.extend(d.folder_editor_user[i]);
            groups.extend(d.folder_viewer_group[i]);
            folder = d.folder_parent[i];
        }
        // A group's members include the members of the groups nested in it.
        let mut seen = vec![false; d.group_members.len()];
        while let Some(g) = groups.pop() {
            if std::mem::replace(&mut seen[g as usize], true) {
                continue;
            }
            users.extend(&d.group_members[g as usize]);
            groups.extend(&d.group_children[g as usize]);
        }
        users.sort_unstable();
        users.dedup();
        users.retain(|u| doc.banned != Some(*u));
        users
    }

    /// The user who can view the most documents, and how many.
    pub fn heaviest_user(&self) -> (u32, usize) {
        (0..self.dataset.regular_users)
            .map(|u| (u, self.viewable_documents(u).len()))
            .max_by_key(|&(u, n)| (n, std::cmp::Reverse(u)))
            .unwrap_or((0, 0))
    }

    /// The document the most users can view, and how many.
    pub fn heaviest_document(&self) -> (u32, usize) {
        (0..self.dataset.spec.documents)
            .map(|n| (n, self.document_viewers(n).len()))
            .max_by_key(|&(n, c)| (c, std::cmp::Reverse(n)))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn tiny(seed: u64) -> DatasetSpec {
        DatasetSpec {
            seed,
            users: 60,
            groups: 12,
            group_depth: 3,
            folders: 30,
            folder_depth: 3,
            documents: 400,
            ..DatasetSpec::default()
        }
    }

    fn texts(d: &Dataset) -> Vec<String> {
        d.relationships().map(|t| t.to_string()).collect()
    }

    #[test]
    fn generation_is_deterministic_per_seed() {
        let a = Dataset::generate(tiny(7)).unwrap();
        let b = Dataset::generate(tiny(7)).unwrap();
        let c = Dataset::generate(tiny(8)).unwrap();
        assert_eq!(texts(&a), texts(&b));
        assert_ne!(texts(&a), texts(&c));
        let mut r1 = SplitMix64::new(1);
        let mut r2 = SplitMix64::new(1);
        for kind in CheckKind::ALL {
            assert_eq!(a.sample_check(kind, &mut r1), b.sample_check(kind, &mut r2));
        }
    }

    #[test]
    fn pinned_output_for_a_seed() {
        // The data of a seed must never change silently (results would stop being
        // comparable): bump DATASET_VERSION and update this when changing the generator.
        let d = Dataset::generate(tiny(42)).unwrap();
        let all = texts(&d);
        let digest = all.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, line| {
            line.bytes()
                .chain([b'\n'])
                .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
        });
        assert_eq!(
            (all.len(), digest),
            (PINNED_COUNT, PINNED_DIGEST),
            "{:?}",
            &all[..5]
        );
    }
    const PINNED_COUNT: usize = 1345;
    const PINNED_DIGEST: u64 = 788_810_457_401_364_537;

    #[test]
    fn count_matches_and_relationships_are_distinct() {
        let d = Dataset::generate(tiny(3)).unwrap();
        let all = texts(&d);
        assert_eq!(all.len() as u64, d.relationship_count());
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "TOUCH batches must not repeat a relationship"
        );
        // Outsiders never appear.
        for n in d.regular_users..d.spec.users {
            let needle = format!("@user:{}", user_id(n));
            assert!(!all.iter().any(|t| t.ends_with(&needle)), "{needle}");
        }
    }

    #[test]
    fn default_sizes_give_about_300k_relationships() {
        let d = Dataset::generate(DatasetSpec::default()).unwrap();
        let n = d.relationship_count();
        assert!((250_000..=350_000).contains(&n), "{n}");
    }

    #[test]
    fn invalid_sizes_are_refused() {
        for spec in [
            DatasetSpec {
                users: 1,
                ..tiny(1)
            },
            DatasetSpec {
                documents: 0,
                ..tiny(1)
            },
            DatasetSpec {
                group_depth: 0,
                ..tiny(1)
            },
            DatasetSpec {
                folder_depth: 65,
                ..tiny(1)
            },
            DatasetSpec {
                version: 99,
                ..tiny(1)
            },
        ] {
            assert!(
                matches!(Dataset::generate(spec), Err(BenchError::Dataset(_))),
                "{spec:?}"
            );
        }
    }

    /// A subject: type, id and optional relation.
    type Subject = (String, String, Option<String>);

    /// A direct evaluator of the schema over the generated relationships: plain recursion,
    /// which terminates because the group and folder graphs are acyclic by construction.
    struct Oracle {
        rels: HashMap<(String, String), Vec<Subject>>,
    }

    impl Oracle {
        fn new(d: &Dataset) -> Oracle {
            let mut rels: HashMap<_, Vec<_>> = HashMap::new();
            for t in d.relationships() {
                rels.entry((
                    format!("{}:{}", t.resource_type, t.resource_id),
                    t.relation.to_string(),
                ))
                .or_default()
                .push((
                    t.subject_type.to_string(),
                    t.subject_id,
                    t.subject_relation.map(str::to_string),
                ));
            }
            Oracle { rels }
        }

        fn subjects(&self, object: &str, relation: &str) -> &[Subject] {
            self.rels
                .get(&(object.to_string(), relation.to_string()))
                .map(Vec::as_slice)
                .unwrap_or(&[])
        }

        /// Direct relation with `group#member` subject sets followed.
        fn relation(&self, object: &str, relation: &str, user: &str) -> bool {
            self.subjects(object, relation)
                .iter()
                .any(|(ty, id, rel)| match rel {
                    None => ty == "user" && id == user,
                    Some(r) => self.relation(&format!("{ty}:{id}"), r, user),
                })
        }

        fn parents(&self, object: &str) -> Vec<String> {
            self.subjects(object, "parent")
                .iter()
                .map(|(ty, id, _)| format!("{ty}:{id}"))
                .collect()
        }

        fn edit(&self, object: &str, user: &str) -> bool {
            self.relation(object, "owner", user)
                || self.relation(object, "editor", user)
                || self.parents(object).iter().any(|p| self.edit(p, user))
        }

        fn view(&self, object: &str, user: &str) -> bool {
            let granted = self.relation(object, "viewer", user)
                || self.edit(object, user)
                || self.parents(object).iter().any(|p| self.view(p, user));
            granted && !self.relation(object, "banned", user)
        }
    }

    #[test]
    fn sampled_expectations_agree_with_a_direct_evaluation() {
        for seed in [1, 2, 3] {
            let d = Dataset::generate(tiny(seed)).unwrap();
            let oracle = Oracle::new(&d);
            let mut rng = SplitMix64::new(seed);
            let mut positives = HashMap::new();
            for _ in 0..300 {
                for kind in CheckKind::ALL {
                    let s = d.sample_check(kind, &mut rng);
                    let truth = oracle.view(
                        &format!("document:{}", document_id(s.document)),
                        &user_id(s.user),
                    );
                    assert_eq!(s.expected, truth, "{s:?}");
                    *positives.entry(kind).or_insert(0) += u32::from(s.expected);
                }
            }
            // Positive kinds are nearly always positive.
            for kind in [
                CheckKind::Direct,
                CheckKind::NestedGroup,
                CheckKind::FolderParent,
            ] {
                assert!(positives[&kind] > 280, "{kind:?}: {}", positives[&kind]);
            }
            assert_eq!(positives[&CheckKind::Negative], 0);
        }
    }

    #[test]
    fn the_lookup_model_agrees_with_a_direct_evaluation() {
        let d = Dataset::generate(tiny(6)).unwrap();
        let oracle = Oracle::new(&d);
        let m = d.lookup_model();
        for user in 0..d.spec.users {
            let want: Vec<u32> = (0..d.spec.documents)
                .filter(|&n| oracle.view(&format!("document:{}", document_id(n)), &user_id(user)))
                .collect();
            assert_eq!(m.viewable_documents(user), want, "user {user}");
        }
        for n in 0..d.spec.documents {
            let doc = format!("document:{}", document_id(n));
            let want: Vec<u32> = (0..d.spec.users)
                .filter(|&u| oracle.view(&doc, &user_id(u)))
                .collect();
            assert_eq!(m.document_viewers(n), want, "document {n}");
        }
        let (user, count) = m.heaviest_user();
        assert_eq!(m.viewable_documents(user).len(), count);
        assert!(count > 0);
        let (doc, count) = m.heaviest_document();
        assert_eq!(m.document_viewers(doc).len(), count);
    }

    #[test]
    fn nested_group_samples_go_through_nesting() {
        let d = Dataset::generate(tiny(5)).unwrap();
        let mut rng = SplitMix64::new(9);
        let nested = (0..200)
            .map(|_| d.sample_check(CheckKind::NestedGroup, &mut rng))
            .filter(|s| {
                let top = d.doc(s.document).viewer_group.unwrap();
                !d.group_members[top as usize].contains(&s.user)
            })
            .count();
        assert!(nested > 50, "only {nested} samples needed a nested group");
    }

    #[test]
    fn lookup_verification_catches_wrong_answers() {
        let d = Dataset::generate(tiny(4)).unwrap();
        let mut rng = SplitMix64::new(4);
        let s = d.sample_positive(&mut rng);
        assert!(s.expected);
        let doc = document_id(s.document);
        assert!(d.verify_lookup_resources(&s, [doc.as_str()]).is_ok());
        assert!(d.verify_lookup_resources(&s, ["d99999"]).is_err());
        assert!(d.verify_lookup_resources(&s, ["x1"]).is_err());
        assert!(d.verify_lookup_resources(&s, std::iter::empty()).is_err());
        let user = user_id(s.user);
        assert!(d.verify_lookup_subjects(&s, [user.as_str()]).is_ok());
        let outsider = user_id(d.spec.users - 1);
        assert!(
            d.verify_lookup_subjects(&s, [user.as_str(), outsider.as_str()])
                .is_err()
        );
        assert!(d.verify_lookup_subjects(&s, std::iter::empty()).is_err());
        // A banned user returned by LookupResources is wrong.
        let banned_doc = d.banned_docs[0];
        let banned_user = d.doc(banned_doc).banned.unwrap();
        let sample = CheckSample {
            kind: CheckKind::Negative,
            document: banned_doc,
            user: banned_user,
            expected: false,
        };
        let id = document_id(banned_doc);
        assert!(d.verify_lookup_resources(&sample, [id.as_str()]).is_err());
        assert!(
            d.verify_lookup_subjects(&sample, [user_id(banned_user).as_str()])
                .is_err()
        );
    }

    #[test]
    fn chains_have_the_requested_depths() {
        let rels = chain_relationships(&[1, 3]);
        let text: Vec<String> = rels.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "document:chaindoc1#viewer@group:chain1-1#member",
                "group:chain1-1#member@user:chainuser1",
                "document:chaindoc3#viewer@group:chain3-1#member",
                "group:chain3-1#member@group:chain3-2#member",
                "group:chain3-2#member@group:chain3-3#member",
                "group:chain3-3#member@user:chainuser3",
            ]
        );
    }
}
