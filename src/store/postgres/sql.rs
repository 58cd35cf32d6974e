//! SQL text and parameters of the relationship reads, and decoding rows back into domain values.
//!
//! Every snapshot read is one statement of this shape:
//!
//! ```sql
//! SELECT g.oldest_revision, r.* FROM tessera_gc g
//! LEFT JOIN LATERAL (SELECT … FROM tessera_relationships
//!                    WHERE <filter> AND created_rev <= $rev AND deleted_rev > $rev
//!                      AND (expires_at IS NULL OR expires_at > $now) …) r
//!   ON g.oldest_revision <= $rev
//! ```
//!
//! The GC state is read by the same statement, so by the same MVCC snapshot, as the rows:
//! garbage collection raises `oldest_revision` in the transaction that deletes what falls out
//! of the window, so a statement either sees every version its revision needs or learns that
//! the revision is gone (and fails with `RevisionTooOld`), never a partial answer.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::model::{
    CaveatRef, Context, ObjectRef, Relationship, RelationshipFilter, RelationshipKey, Revision,
    SubjectFilter, SubjectRef, SubjectRelationFilter, Timestamp,
};
use crate::store::StoreError;

/// The identity columns, in the documented query order.
pub(super) const KEY_COLUMNS: &str =
    "resource_type, resource_id, relation, subject_type, subject_id, subject_relation";

/// A relationship's columns, as every read selects them.
pub(super) const COLUMNS: &str = "resource_type, resource_id, relation, subject_type, subject_id, subject_relation, caveat_name, caveat_context, expires_at";

/// The identity columns in the reverse index's order.
pub(super) const REVERSE_COLUMNS: &str =
    "subject_type, subject_id, subject_relation, resource_type, relation, resource_id";

/// The order of a read's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// By identity: the documented query order.
    Forward,
    /// By subject first: the reverse index's order (reverse queries promise none; paging
    /// needs one).
    Reverse,
}

impl Order {
    fn columns(self) -> &'static str {
        match self {
            Order::Forward => KEY_COLUMNS,
            Order::Reverse => REVERSE_COLUMNS,
        }
    }

    fn outer(self) -> &'static str {
        match self {
            Order::Forward => {
                "r.resource_type, r.resource_id, r.relation, r.subject_type, r.subject_id, r.subject_relation"
            }
            Order::Reverse => {
                "r.subject_type, r.subject_id, r.subject_relation, r.resource_type, r.relation, r.resource_id"
            }
        }
    }
}

/// A statement parameter that a task on the store's runtime can own.
pub(super) type Param = Box<dyn ToSql + Send + Sync>;

/// Borrowed parameters, as the driver takes them.
pub(super) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

/// A revision as a `BIGINT` (revisions beyond `i64::MAX` cannot exist in the database).
pub(super) fn rev(r: Revision) -> i64 {
    i64::try_from(r.0).unwrap_or(i64::MAX)
}

/// A revision read from a `BIGINT` column.
pub(super) fn revision_of(v: i64, what: &str) -> Result<Revision, StoreError> {
    u64::try_from(v)
        .map(Revision)
        .map_err(|_| StoreError::Corrupt(format!("{what} is negative ({v})")))
}

/// The stored form of a subject relation: `''` for the ellipsis.
pub(super) fn subject_relation(s: &SubjectRef) -> &str {
    s.relation.as_deref().unwrap_or("")
}

/// A JSON object as stored (`NULL` when empty).
pub(super) fn json_text(m: &Context) -> Option<String> {
    (!m.is_empty()).then(|| serde_json::Value::Object(m.clone()).to_string())
}

/// A stored JSON object (`NULL` is the empty object).
pub(super) fn json_object(text: Option<&str>, what: &str) -> Result<Context, StoreError> {
    match text {
        None => Ok(Context::new()),
        Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(StoreError::Corrupt(format!(
                "{what} is not a JSON object: {}",
                t.chars().take(80).collect::<String>()
            ))),
        },
    }
}

/// Decodes the relationship in `row`'s columns `at..at + 9` (the order of [`COLUMNS`]).
pub(super) fn relationship(row: &Row, at: usize) -> Result<Relationship, StoreError> {
    let text = |i: usize| -> Result<String, StoreError> {
        row.try_get::<_, String>(at + i)
            .map_err(|e| StoreError::Corrupt(format!("reading a relationship column: {e}")))
    };
    let subject_relation = text(5)?;
    let caveat_name: Option<String> = row
        .try_get(at + 6)
        .map_err(|e| StoreError::Corrupt(format!("reading a caveat name: {e}")))?;
    let caveat_context: Option<String> = row
        .try_get(at + 7)
        .map_err(|e| StoreError::Corrupt(format!("reading a caveat context: {e}")))?;
    let expiration: Option<Timestamp> = row
        .try_get(at + 8)
        .map_err(|e| StoreError::Corrupt(format!("reading an expiration: {e}")))?;
    let caveat = match caveat_name {
        Some(name) => Some(CaveatRef {
            context: json_object(caveat_context.as_deref(), "a caveat context")?,
            name,
        }),
        None => None,
    };
    Ok(Relationship {
        resource: ObjectRef::new(text(0)?, text(1)?),
        relation: text(2)?,
        subject: SubjectRef {
            object: ObjectRef::new(text(3)?, text(4)?),
            relation: (!subject_relation.is_empty()).then_some(subject_relation),
        },
        caveat,
        expiration,
    })
}

/// The smallest string greater than every string starting with `prefix` (byte order, which
/// is code point order in UTF-8), or `None` when there is none.
pub(super) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        while next <= u32::from(char::MAX) {
            if let Some(c) = char::from_u32(next) {
                chars.push(c);
                return Some(chars.into_iter().collect());
            }
            next += 1;
        }
    }
    None
}

/// A statement under construction: text plus owned parameters.
#[derive(Default)]
pub(super) struct Statement {
    pub(super) conditions: Vec<String>,
    pub(super) params: Vec<Param>,
}

impl Statement {
    /// Adds a parameter and returns its placeholder (`$n`).
    pub(super) fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    pub(super) fn equals(&mut self, column: &str, value: &str) {
        let p = self.param(Box::new(value.to_string()));
        self.conditions.push(format!("{column} = {p}"));
    }

    /// Conditions selecting the relationships of `f`.
    pub(super) fn filter(&mut self, f: &RelationshipFilter) {
        if let Some(t) = &f.resource_type {
            self.equals("resource_type", t);
        }
        if let Some(id) = &f.resource_id {
            self.equals("resource_id", id);
        }
        if let Some(prefix) = &f.resource_id_prefix {
            let p = self.param(Box::new(prefix.clone()));
            self.conditions.push(format!("resource_id >= {p}"));
            if let Some(upper) = prefix_successor(prefix) {
                let p = self.param(Box::new(upper));
                self.conditions.push(format!("resource_id < {p}"));
            }
        }
        if let Some(r) = &f.relation {
            self.equals("relation", r);
        }
        if let Some(s) = &f.subject {
            self.subject(s);
        }
    }

    /// Conditions selecting relationships by subject.
    pub(super) fn subject(&mut self, s: &SubjectFilter) {
        self.equals("subject_type", &s.subject_type);
        if let Some(id) = &s.subject_id {
            self.equals("subject_id", id);
        }
        match &s.relation {
            SubjectRelationFilter::Any => {}
            SubjectRelationFilter::Ellipsis => self.equals("subject_relation", ""),
            SubjectRelationFilter::Relation(r) => self.equals("subject_relation", r),
        }
    }

    /// Strictly after `key` in the documented order.
    pub(super) fn after(&mut self, key: &RelationshipKey) {
        let values = [
            key.resource.object_type.as_str(),
            key.resource.object_id.as_str(),
            key.relation.as_str(),
            key.subject.object.object_type.as_str(),
            key.subject.object.object_id.as_str(),
            subject_relation(&key.subject),
        ];
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| self.param(Box::new(v.to_string())))
            .collect();
        self.conditions
            .push(format!("({KEY_COLUMNS}) > ({})", placeholders.join(", ")));
    }

    /// Strictly after `key` in the reverse index's order.
    pub(super) fn after_reverse(&mut self, key: &RelationshipKey) {
        let values = [
            key.subject.object.object_type.as_str(),
            key.subject.object.object_id.as_str(),
            subject_relation(&key.subject),
            key.resource.object_type.as_str(),
            key.relation.as_str(),
            key.resource.object_id.as_str(),
        ];
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| self.param(Box::new(v.to_string())))
            .collect();
        self.conditions.push(format!(
            "({REVERSE_COLUMNS}) > ({})",
            placeholders.join(", ")
        ));
    }

    /// Visible at `revision` and, when `now` is given, not expired at `now`. Returns the
    /// revision's placeholder.
    pub(super) fn visible(&mut self, revision: Revision, now: Option<Timestamp>) -> String {
        let r = self.param(Box::new(rev(revision)));
        self.conditions
            .push(format!("created_rev <= {r} AND deleted_rev > {r}"));
        if let Some(now) = now {
            let n = self.param(Box::new(now));
            self.conditions
                .push(format!("(expires_at IS NULL OR expires_at > {n})"));
        }
        r
    }

    /// [`Statement::guarded_select`] of every version visible at `revision`, expired or not
    /// (the caller judges expiry), without a limit.
    pub(super) fn guarded_select_any_expiry(
        self,
        revision: Revision,
        order: Order,
    ) -> (String, Vec<Param>) {
        self.select(revision, None, order, None)
    }

    /// The guarded read: the GC state and the matching rows, from one MVCC snapshot, in
    /// `order`, at most `limit`.
    pub(super) fn guarded_select(
        self,
        revision: Revision,
        now: Timestamp,
        order: Order,
        limit: Option<usize>,
    ) -> (String, Vec<Param>) {
        self.select(revision, Some(now), order, limit)
    }

    fn select(
        mut self,
        revision: Revision,
        now: Option<Timestamp>,
        order: Order,
        limit: Option<usize>,
    ) -> (String, Vec<Param>) {
        let r = self.visible(revision, now);
        let outer_order = format!(" ORDER BY {}", order.outer());
        let order = format!(" ORDER BY {}", order.columns());
        let limit = match limit {
            Some(n) => {
                let p = self.param(Box::new(i64::try_from(n).unwrap_or(i64::MAX)));
                format!(" LIMIT {p}")
            }
            None => String::new(),
        };
        let sql = format!(
            "SELECT g.oldest_revision, r.* FROM tessera_gc g LEFT JOIN LATERAL \
             (SELECT {COLUMNS} FROM tessera_relationships WHERE {}{order}{limit}) r \
             ON g.oldest_revision <= {r}{outer_order}",
            self.conditions.join(" AND "),
        );
        (sql, self.params)
    }
}

/// Decodes the rows of a [`Statement::guarded_select`]: the relationships, or
/// `RevisionTooOld` when garbage collection has passed `revision`.
pub(super) fn guarded_rows(
    rows: &[Row],
    revision: Revision,
) -> Result<Vec<Relationship>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let oldest: i64 = row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(format!("reading the GC state: {e}")))?;
        let oldest = revision_of(oldest, "the oldest readable revision")?;
        if oldest > revision {
            return Err(StoreError::RevisionTooOld {
                requested: revision,
                oldest,
            });
        }
        // The outer join's row without a match.
        let present: Option<&str> = row
            .try_get(1)
            .map_err(|e| StoreError::Corrupt(format!("reading a relationship column: {e}")))?;
        if present.is_some() {
            out.push(relationship(row, 1)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_exactly_the_strings_with_the_prefix() {
        assert_eq!(prefix_successor("doc"), Some("dod".to_string()));
        assert_eq!(prefix_successor(""), None);
        let max = char::MAX.to_string();
        assert_eq!(prefix_successor(&format!("a{max}")), Some("b".to_string()));
        assert_eq!(prefix_successor(&max), None);
        // Past the surrogate gap.
        let below_gap = char::from_u32(0xD7FF).map(String::from).unwrap_or_default();
        assert_eq!(
            prefix_successor(&below_gap),
            char::from_u32(0xE000).map(String::from)
        );
        for s in ["doc", "doc1", "doc\u{10FFFF}", "dod"] {
            let upper = prefix_successor("doc").unwrap_or_default();
            assert_eq!(
                s.starts_with("doc"),
                s >= "doc" && s < upper.as_str(),
                "{s}"
            );
        }
    }
}
