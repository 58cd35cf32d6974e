//! Crash safety of the durable stores (RocksDB, and PostgreSQL against the tests' private
//! cluster) under `kill -9` of the process writing to them.
//!
//! The parent test re-runs this test binary as a child (`crash_child_writer`, selected by an
//! environment variable) that writes random transactions in a loop and records each one in an
//! fsynced log: `intent` before the write, then `ack` with the returned revision (or `fail`).
//! The parent SIGKILLs the child at a random moment, reopens the data directory and checks:
//! - revisions are dense and every acknowledged transaction is present at its revision, in full;
//! - the transaction in flight at the kill is either fully applied or not at all;
//! - the whole state at the head, and at a sampled older revision, equals a model built by
//!   replaying the log, and each revision's change set is exactly its transaction's effect;
//! - the nested-group index (the writes nest groups, some through caveats) is never torn: at
//!   the head and at the sampled revision it is exactly the index of the model's state.
//!
//! `TESSERA_CRASH_CYCLES` sets the number of kill cycles (default 20 for RocksDB, 8 for
//! PostgreSQL; hundreds for soak runs), `TESSERA_CRASH_SEED` replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tessera::model::{
    Relationship, RelationshipFilter, RelationshipKey, Revision, parse_relationship,
};
use tessera::store::leopard;
use tessera::store::postgres::PostgresStore;
use tessera::store::rocks::{RocksOptions, RocksStore};
use tessera::store::{RelationshipUpdate, Store, StoreError, WriteOp, WriteTransaction};

use crate::pg_support;

const CHILD_DIR_VAR: &str = "TESSERA_CRASH_CHILD_DIR";
const CHILD_SEED_VAR: &str = "TESSERA_CRASH_CHILD_SEED";
/// Set for a child writing to PostgreSQL: the database's connection string.
const CHILD_PG_VAR: &str = "TESSERA_CRASH_CHILD_PG_URI";

/// The store under test.
#[derive(Clone)]
enum Engine {
    Rocks,
    /// The private cluster and the test's database.
    Postgres(String),
}

impl Engine {
    fn open(&self, dir: &Path) -> Box<dyn Store> {
        match self {
            Engine::Rocks => {
                Box::new(RocksStore::open(dir.join("data"), options()).expect("open store"))
            }
            Engine::Postgres(db) => {
                let uri = pg_support::cluster().uri(db);
                Box::new(PostgresStore::open(pg_support::options(&uri)).expect("open store"))
            }
        }
    }
}

/// xorshift64*: reproducible, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn options() -> RocksOptions {
    RocksOptions {
        gc_interval: None,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 1 << 20,
        ..RocksOptions::default()
    }
}

fn op_name(op: WriteOp) -> &'static str {
    match op {
        WriteOp::Create => "create",
        WriteOp::Touch => "touch",
        WriteOp::Delete => "delete",
    }
}

fn parse_op(s: &str) -> WriteOp {
    match s {
        "create" => WriteOp::Create,
        "touch" => WriteOp::Touch,
        "delete" => WriteOp::Delete,
        other => panic!("bad op `{other}` in crash log"),
    }
}

fn append(log: &mut File, line: &str) {
    log.write_all(line.as_bytes()).expect("write crash log");
    log.write_all(b"\n").expect("write crash log");
    log.sync_data().expect("fsync crash log");
}

/// Not a test by itself: the child process of `crash_recovery_keeps_every_acknowledged_write`.
/// Without the environment variable it returns at once.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let dir = Path::new(&dir);
    let seed = std::env::var(CHILD_SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng::new(seed);
    let store: Box<dyn Store> = match std::env::var(CHILD_PG_VAR) {
        Ok(uri) => {
            Box::new(PostgresStore::open(pg_support::options(&uri)).expect("child: open store"))
        }
        Err(_) => {
            Box::new(RocksStore::open(dir.join("data"), options()).expect("child: open store"))
        }
    };
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("log"))
        .expect("child: open log");
    append(
        &mut log,
        &format!("open {}", store.head_revision().expect("head")),
    );
    for n in 0u64.. {
        let bulk = rng.below(25) == 0;
        let mut updates: Vec<RelationshipUpdate> = Vec::new();
        if bulk {
            // Fresh identities: a bulk import that always succeeds, large enough to span chunks.
            for i in 0..(1 + rng.below(1200)) {
                updates.push(RelationshipUpdate {
                    op: WriteOp::Create,
                    relationship: parse_relationship(&format!("bulk:s{seed}n{n}#member@user:u{i}"))
                        .expect("rel"),
                });
            }
        } else {
            let mut used = std::collections::HashSet::new();
            for _ in 0..(1 + rng.below(6)) {
                let text = match rng.below(3) {
                    // Groups nesting groups (the nested-group index follows them).
                    0 => format!("grp:g{}#member@grp:g{}#member", rng.below(8), rng.below(8)),
                    _ => format!(
                        "doc:d{}#{}@user:u{}",
                        rng.below(30),
                        ["viewer", "editor"][rng.below(2) as usize],
                        rng.below(4)
                    ),
                };
                if !used.insert(text.clone()) {
                    continue;
                }
                let op = match rng.below(10) {
                    0..=2 => WriteOp::Create,
                    3..=6 => WriteOp::Touch,
                    _ => WriteOp::Delete,
                };
                let text = if op != WriteOp::Delete && rng.below(3) == 0 {
                    format!("{text}[cav:{{\"n\":{n}}}]")
                } else {
                    text
                };
                updates.push(RelationshipUpdate {
                    op,
                    relationship: parse_relationship(&text).expect("rel"),
                });
            }
        }
        let mut line = format!("intent {n} {}", if bulk { "bulk" } else { "txn" });
        for u in &updates {
            line.push('\t');
            line.push_str(op_name(u.op));
            line.push(' ');
            line.push_str(&u.relationship.to_string());
        }
        append(&mut log, &line);
        let result = if bulk {
            store.bulk_import(updates.into_iter().map(|u| u.relationship).collect(), None)
        } else {
            store.write(WriteTransaction {
                updates,
                preconditions: Vec::new(),
                caller: Some("crash-child".into()),
                metadata: Default::default(),
                schema_revision: None,
            })
        };
        match result {
            Ok(rev) => append(&mut log, &format!("ack {n} {rev}")),
            Err(StoreError::AlreadyExists(_)) => append(&mut log, &format!("fail {n}")),
            Err(e) => panic!("child: unexpected write error: {e}"),
        }
    }
}

struct Intent {
    n: u64,
    updates: Vec<(WriteOp, Relationship)>,
}

enum Entry {
    Open,
    Intent(Intent),
    Ack(u64, Revision),
    Fail(u64),
}

fn parse_line(line: &str) -> Entry {
    let (head, rest) = line.split_once('\t').unwrap_or((line, ""));
    let words: Vec<&str> = head.split(' ').collect();
    match words.as_slice() {
        ["open", _] => Entry::Open,
        ["intent", n, _kind] => Entry::Intent(Intent {
            n: n.parse().expect("intent number"),
            updates: rest
                .split('\t')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (op, text) = s.split_once(' ').expect("op and relationship");
                    (
                        parse_op(op),
                        parse_relationship(text).expect("logged relationship"),
                    )
                })
                .collect(),
        }),
        ["ack", n, rev] => Entry::Ack(n.parse().expect("n"), Revision(rev.parse().expect("rev"))),
        ["fail", n] => Entry::Fail(n.parse().expect("n")),
        _ => panic!("unparsable crash log line `{line}`"),
    }
}

type State = BTreeMap<RelationshipKey, Relationship>;

/// The replayed model: state per revision and each revision's expected effective changes.
struct Model {
    head: Revision,
    state: State,
    history: BTreeMap<Revision, State>,
    effects: BTreeMap<Revision, Vec<(WriteOp, RelationshipKey)>>,
    applied: BTreeMap<Revision, Vec<(WriteOp, Relationship)>>,
}

impl Model {
    fn apply(&mut self, rev: Revision, intent: &Intent) {
        assert_eq!(
            rev,
            self.head.next(),
            "revisions must be dense (intent {})",
            intent.n
        );
        let mut effects = Vec::new();
        for (op, rel) in &intent.updates {
            let key = rel.key();
            match op {
                WriteOp::Create => {
                    assert!(
                        self.state.insert(key.clone(), rel.clone()).is_none(),
                        "acknowledged CREATE of an existing `{key}`"
                    );
                    effects.push((WriteOp::Create, key));
                }
                WriteOp::Touch => {
                    self.state.insert(key.clone(), rel.clone());
                    effects.push((WriteOp::Touch, key));
                }
                WriteOp::Delete => {
                    if self.state.remove(&key).is_some() {
                        effects.push((WriteOp::Delete, key));
                    }
                }
            }
        }
        self.head = rev;
        self.effects.insert(rev, effects);
        self.applied.insert(rev, intent.updates.clone());
        // Full states are kept only for every 16th revision and at most 64 of them: the child
        // can commit thousands of transactions per cycle on a fast disk, and a clone of the
        // whole state per revision would exhaust memory.
        if rev.0.is_multiple_of(16) {
            self.history.insert(rev, self.state.clone());
            while self.history.len() > 64 {
                let first = *self.history.keys().next().expect("non-empty");
                self.history.remove(&first);
            }
        }
    }

    /// Whether `intent` could have committed on the current state (CREATEs of absent keys).
    fn could_commit(&self, intent: &Intent) -> bool {
        intent
            .updates
            .iter()
            .all(|(op, rel)| *op != WriteOp::Create || !self.state.contains_key(&rel.key()))
    }
}

/// The relationships at `rev`, and the nested-group index rows there (as text).
fn full_state(store: &dyn Store, rev: Revision) -> (State, BTreeSet<String>) {
    let mut data = State::new();
    let mut index = BTreeSet::new();
    for r in store
        .snapshot(rev)
        .expect("snapshot")
        .query(&RelationshipFilter::default(), None)
        .expect("query")
    {
        let r = r.expect("row");
        if r.resource.object_type.starts_with("tessera/") {
            index.insert(r.key().to_string());
        } else {
            data.insert(r.key(), r);
        }
    }
    (data, index)
}

const NESTING_SCHEMA: &str = "caveat cav(n int) {\n    n > 0\n}\n\ndefinition user {}\n\ndefinition grp {\n    relation member: user | grp#member | grp#member with cav\n}\n";

/// The nested-group index of `grp#member` computed from scratch over `state`.
fn expected_index(state: &State) -> BTreeSet<String> {
    let userset = |r: &Relationship| {
        r.resource.object_type == "grp"
            && r.relation == "member"
            && r.subject.object.object_type == "grp"
            && r.subject.relation.as_deref() == Some("member")
    };
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let st = leopard::state_type("grp");
    out.insert(format!("{st}:member#{}@{st}:member", leopard::BUILT));
    for r in state.values().filter(|r| userset(r)) {
        if r.caveat.is_none() && r.expiration.is_none() {
            edges
                .entry(&r.resource.object_id)
                .or_default()
                .push(&r.subject.object.object_id);
        } else {
            out.insert(format!(
                "{st}:member#{}@grp:{}#member",
                leopard::IRREGULAR,
                r.resource.object_id
            ));
        }
    }
    for a in edges.keys() {
        let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        let mut stack = edges[a].clone();
        while let Some(z) = stack.pop() {
            if z == *a || !seen.insert(z) {
                continue;
            }
            stack.extend(edges.get(z).into_iter().flatten());
        }
        for b in seen {
            out.insert(format!(
                "{}:{a}#member@grp:{b}#member",
                leopard::closure_type("grp")
            ));
        }
    }
    out
}

fn assert_states_equal(got: &State, want: &State, what: &str) {
    if got != want {
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(k))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !want.contains_key(k))
            .take(5)
            .collect();
        let differ: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(k).is_some_and(|g| g != *v))
            .map(|(k, _)| k)
            .take(5)
            .collect();
        panic!(
            "{what}: state differs; missing {missing:?}, unexpected {extra:?}, different {differ:?}"
        );
    }
}

/// Reads the complete lines appended since `offset`, and cuts a torn last line off the file.
fn read_new_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    let mut file = File::open(path).expect("open log");
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).expect("read log");
    let start = usize::try_from(*offset).expect("offset");
    let complete = bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1)
        .max(start);
    if complete < bytes.len() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open log")
            .set_len(complete as u64)
            .expect("truncate torn line");
    }
    let lines = BufReader::new(&bytes[start..complete])
        .lines()
        .map(|l| l.expect("utf-8 log"))
        .collect();
    *offset = complete as u64;
    lines
}

#[test]
fn crash_recovery_keeps_every_acknowledged_write() {
    crash_cycles(Engine::Rocks, 20);
}

#[test]
fn crash_recovery_on_postgres_keeps_every_acknowledged_write() {
    let db = pg_support::cluster().fresh_database();
    crash_cycles(Engine::Postgres(db), 8);
}

/// Waits until no session of the killed child is left on the server, so the fate of its
/// in-flight transaction (committed or rolled back) is settled before the store is reopened.
fn wait_for_sessions_to_end(db: &str) {
    let cluster = pg_support::cluster();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
                     AND pid <> pg_backend_pid()"
                ),
            )
            .expect("count sessions");
        if n == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the killed child's sessions never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn crash_cycles(engine: Engine, default_cycles: usize) {
    let cycles: usize = std::env::var("TESSERA_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cycles);
    let seed: u64 = std::env::var("TESSERA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    let name = match &engine {
        Engine::Rocks => "rocksdb",
        Engine::Postgres(_) => "postgres",
    };
    eprintln!("crash test ({name}): {cycles} cycles, TESSERA_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("log");
    File::create(&log_path).expect("create log");
    let exe = std::env::current_exe().expect("test binary path");

    let mut model = Model {
        head: Revision::ZERO,
        state: State::new(),
        history: BTreeMap::new(),
        effects: BTreeMap::new(),
        applied: BTreeMap::new(),
    };
    // The schema that makes the stores keep a nested-group index of `grp#member`.
    {
        let opened = engine.open(dir.path());
        let rev = opened
            .write_schema(NESTING_SCHEMA, &mut |_| Ok(()), None)
            .expect("schema");
        model.head = rev;
        model.effects.insert(rev, Vec::new());
        model.applied.insert(rev, Vec::new());
    }
    let mut offset = 0u64;
    let mut total_acks = 0usize;
    let mut in_flight_applied = 0usize;

    for cycle in 0..cycles {
        let stderr = File::create(dir.path().join("child.stderr")).expect("stderr file");
        let mut command = Command::new(&exe);
        if let Engine::Postgres(db) = &engine {
            command.env(CHILD_PG_VAR, pg_support::cluster().uri(db));
        }
        let mut child = command
            .args([
                "crash::crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, dir.path())
            .env(
                CHILD_SEED_VAR,
                (seed ^ (cycle as u64 + 1).wrapping_mul(0x9E37_79B9)).to_string(),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn child");
        // Let the child open the store and start writing, then kill it at a random moment.
        let start_len = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("poll child") {
                let err =
                    std::fs::read_to_string(dir.path().join("child.stderr")).unwrap_or_default();
                panic!("cycle {cycle}: child exited on its own ({status}): {err}");
            }
            if std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) > start_len + 64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: child never started writing"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().expect("SIGKILL child");
        child.wait().expect("reap child");
        if let Engine::Postgres(db) = &engine {
            wait_for_sessions_to_end(db);
        }

        // Replay the log into the model.
        let lines = read_new_lines(&log_path, &mut offset);
        let mut pending: Option<Intent> = None;
        let first_new = model.head.next();
        for line in &lines {
            match parse_line(line) {
                Entry::Open => assert!(pending.is_none()),
                Entry::Intent(i) => {
                    assert!(
                        pending.is_none(),
                        "cycle {cycle}: intent {} without outcome",
                        i.n
                    );
                    pending = Some(i);
                }
                Entry::Ack(n, rev) => {
                    let i = pending.take().expect("ack without intent");
                    assert_eq!(i.n, n);
                    model.apply(rev, &i);
                    total_acks += 1;
                }
                Entry::Fail(n) => {
                    let i = pending.take().expect("fail without intent");
                    assert_eq!(i.n, n);
                }
            }
        }

        let opened = engine.open(dir.path());
        let store = &*opened;
        let head = store.head_revision().expect("head");
        assert!(
            head >= model.head,
            "cycle {cycle}: head {head} lost acknowledged revision {}",
            model.head
        );
        if head > model.head {
            // The transaction in flight at the kill committed: it must be there in full.
            let intent = pending.take().unwrap_or_else(|| {
                panic!(
                    "cycle {cycle}: head {head} is past the last logged transaction {}",
                    model.head
                )
            });
            assert!(
                model.could_commit(&intent),
                "cycle {cycle}: a failing write committed"
            );
            model.apply(head, &intent);
            in_flight_applied += 1;
        }
        assert_eq!(
            head, model.head,
            "cycle {cycle}: more than one unacknowledged revision"
        );

        // Every transaction of this cycle: its change set is exactly its effect, and its
        // writes are visible at its revision.
        let mut r = first_new;
        while r <= head {
            let changes = store
                .read_changes(Revision(r.0 - 1), 1)
                .expect("read changes");
            assert_eq!(changes.len(), 1, "cycle {cycle}: no change set at {r}");
            let mut got: Vec<(WriteOp, RelationshipKey)> = changes[0]
                .changes
                .iter()
                .filter(|c| !c.relationship.resource.object_type.starts_with("tessera/"))
                .map(|c| (c.op, c.relationship.key()))
                .collect();
            let mut want = model.effects[&r].clone();
            got.sort_by(|a, b| a.1.cmp(&b.1));
            want.sort_by(|a, b| a.1.cmp(&b.1));
            assert_eq!(got, want, "cycle {cycle}: change set at {r}");
            let snap = store.snapshot(r).expect("snapshot");
            for (op, rel) in model.applied[&r].iter().take(50) {
                let found: Vec<Relationship> = snap
                    .query(&RelationshipFilter::exact(&rel.key()), None)
                    .expect("query")
                    .map(|x| x.expect("row"))
                    .collect();
                match op {
                    WriteOp::Delete => assert!(
                        found.is_empty(),
                        "cycle {cycle}: `{rel}` not deleted at {r}"
                    ),
                    _ => assert_eq!(
                        found,
                        vec![rel.clone()],
                        "cycle {cycle}: `{rel}` missing at {r}"
                    ),
                }
            }
            r = r.next();
        }
        let (data, index) = full_state(store, head);
        assert_states_equal(&data, &model.state, &format!("cycle {cycle}, head {head}"));
        assert_eq!(
            index,
            expected_index(&model.state),
            "cycle {cycle}: the nested-group index at head {head}"
        );
        if !model.history.is_empty() {
            let kept: Vec<Revision> = model.history.keys().copied().collect();
            let sample = kept[rng.below(kept.len() as u64) as usize];
            let (data, index) = full_state(store, sample);
            assert_states_equal(
                &data,
                &model.history[&sample],
                &format!("cycle {cycle}, revision {sample}"),
            );
            assert_eq!(
                index,
                expected_index(&model.history[&sample]),
                "cycle {cycle}: the nested-group index at revision {sample}"
            );
        }
        // Keep the model's memory bounded: old states are only needed for sampling.
        while model.history.len() > 2000 {
            let first = *model.history.keys().next().expect("non-empty");
            model.history.remove(&first);
            model.effects.remove(&first);
            model.applied.remove(&first);
        }
        drop(opened);
        if std::env::var_os("TESSERA_CRASH_VERBOSE").is_some() {
            eprintln!(
                "cycle {cycle}: head {head}, {} relationships",
                model.state.len()
            );
        }
    }
    eprintln!(
        "crash test ({name}): {cycles} kills, {total_acks} acknowledged transactions, {in_flight_applied} in-flight commits recovered, head {}",
        model.head
    );
    assert!(total_acks > 0, "the child never got a write acknowledged");
}
