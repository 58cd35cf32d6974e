//! Callers' capabilities, stored as relationships in the reserved `tessera/` namespace and
//! evaluated by the engine against a built-in schema at the newest revision, so a grant or a
//! revocation applies to the caller's very next call.
//!
//! Layout (`<caller>` is the encoded caller id, see [`caller_object_id`]):
//! - `tessera/system:main#admin@tessera/caller:<caller>`: `admin`
//! - `tessera/system:main#schema_writer@…`: `schema-write`
//! - `tessera/system:main#reader@…`: `read`
//! - `tessera/system:main#relationship_writer@…`: `write:*`
//! - `tessera/resource_type:<type>#writer@…`: `write:<type>`

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use crate::engine::{CheckOutcome, Evaluator, SchemaIndex};
use crate::model::{
    Context, ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, SubjectRef,
    SubjectRelationFilter,
};
use crate::schema::Schema;
use crate::service::{ErrorKind, ServiceError, Tessera};
use crate::store::{RelationshipUpdate, WriteOp, WriteTransaction};

use super::{Capability, MAX_CALLER_ID_LEN};

/// Object types starting with this prefix belong to Tessera; user schemas may not define them
/// (the service enforces this on every schema and relationship it accepts).
pub const RESERVED_PREFIX: &str = crate::service::RESERVED_TYPE_PREFIX;

/// The type of caller subjects.
pub const CALLER_TYPE: &str = "tessera/caller";
/// The type of the one system object.
pub const SYSTEM_TYPE: &str = "tessera/system";
/// The id of the one system object.
pub const SYSTEM_ID: &str = "main";
/// The type of per-resource-type grant objects (their id is the resource type).
pub const RESOURCE_TYPE_TYPE: &str = "tessera/resource_type";

/// The built-in schema of the reserved namespace. Capabilities are independent of one
/// another except that `admin` implies every capability and `write:*` implies every
/// `write:<type>`.
pub const BUILTIN_SCHEMA: &str = r#"
/// A caller of the API, identified by its JWT subject.
definition tessera/caller {}

/// The Tessera installation itself: one object, `tessera/system:main`.
definition tessera/system {
    relation admin: tessera/caller
    relation schema_writer: tessera/caller
    relation reader: tessera/caller
    relation relationship_writer: tessera/caller

    /// Manage callers' capabilities; implies every other capability.
    permission manage = admin
    permission write_schema = admin + schema_writer
    /// Read the schema and relationships, check, expand, look up, watch.
    permission read = admin + reader
    /// Write relationships of every resource type.
    permission write_relationships = admin + relationship_writer
}

/// One resource type of the user schema; its object id is the type name.
definition tessera/resource_type {
    relation writer: tessera/caller
    permission write = writer
}
"#;

struct Builtin {
    schema: Arc<Schema>,
    index: SchemaIndex,
}

fn builtin() -> &'static Builtin {
    static BUILTIN: OnceLock<Builtin> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        let schema = crate::schema::compile("tessera-builtin.zed", BUILTIN_SCHEMA)
            .expect("the built-in access schema is a compile-time constant covered by tests")
            .schema;
        let index = SchemaIndex::new(&schema);
        Builtin { schema, index }
    })
}

use crate::service::is_reserved_type;

// ---- capabilities --------------------------------------------------------------------

/// Why a textual capability could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid capability `{text}`: {reason}")]
pub struct CapabilityParseError {
    pub text: String,
    pub reason: String,
}

const CAPABILITY_FORMS: &str =
    "expected `admin`, `schema-write`, `read`, `write:*` or `write:<resource type>`";

/// The textual syntax of the CLI: `admin`, `schema-write`, `read`, `write:*`, `write:<type>`.
impl FromStr for Capability {
    type Err = CapabilityParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CapabilityParseError {
            text: text.to_string(),
            reason,
        };
        let t = text.trim();
        match t {
            "admin" => return Ok(Capability::Admin),
            "schema-write" => return Ok(Capability::WriteSchema),
            "read" => return Ok(Capability::Read),
            "write:*" => return Ok(Capability::WriteAnyRelationships),
            "write" => {
                return Err(err(format!(
                    "say which resource type: `write:<type>` or `write:*` for all; {CAPABILITY_FORMS}"
                )));
            }
            _ => {}
        }
        let Some(resource_type) = t.strip_prefix("write:") else {
            return Err(err(CAPABILITY_FORMS.into()));
        };
        crate::model::validate_object_type(resource_type).map_err(|e| err(e.to_string()))?;
        if is_reserved_type(resource_type) {
            return Err(err(format!(
                "`{resource_type}` is in the reserved namespace `{RESERVED_PREFIX}`"
            )));
        }
        Ok(Capability::WriteRelationships {
            resource_type: resource_type.to_string(),
        })
    }
}

/// Renders the textual syntax accepted by `FromStr`.
impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Admin => f.write_str("admin"),
            Capability::WriteSchema => f.write_str("schema-write"),
            Capability::Read => f.write_str("read"),
            Capability::WriteAnyRelationships => f.write_str("write:*"),
            Capability::WriteRelationships { resource_type } => write!(f, "write:{resource_type}"),
        }
    }
}

impl Capability {
    /// Where a grant of this capability is stored: (object, relation).
    fn grant_slot(&self) -> (ObjectRef, &'static str) {
        let system = ObjectRef::new(SYSTEM_TYPE, SYSTEM_ID);
        match self {
            Capability::Admin => (system, "admin"),
            Capability::WriteSchema => (system, "schema_writer"),
            Capability::Read => (system, "reader"),
            Capability::WriteAnyRelationships => (system, "relationship_writer"),
            Capability::WriteRelationships { resource_type } => (
                ObjectRef::new(RESOURCE_TYPE_TYPE, resource_type.clone()),
                "writer",
            ),
        }
    }

    /// The grant stored as `resource#relation`, the inverse of [`Capability::grant_slot`].
    fn from_grant(resource: &ObjectRef, relation: &str) -> Option<Capability> {
        match (resource.object_type.as_str(), relation) {
            (SYSTEM_TYPE, _) if resource.object_id != SYSTEM_ID => None,
            (SYSTEM_TYPE, "admin") => Some(Capability::Admin),
            (SYSTEM_TYPE, "schema_writer") => Some(Capability::WriteSchema),
            (SYSTEM_TYPE, "reader") => Some(Capability::Read),
            (SYSTEM_TYPE, "relationship_writer") => Some(Capability::WriteAnyRelationships),
            (RESOURCE_TYPE_TYPE, "writer") => Some(Capability::WriteRelationships {
                resource_type: resource.object_id.clone(),
            }),
            _ => None,
        }
    }

    /// What the capability allows, for denial messages.
    fn describe(&self) -> String {
        match self {
            Capability::Admin => "manage access (an administrator capability)".into(),
            Capability::WriteSchema => "write the schema".into(),
            Capability::Read => "read (schema, relationships, checks, lookups, watch)".into(),
            Capability::WriteAnyRelationships => {
                "write relationships of every resource type".into()
            }
            Capability::WriteRelationships { resource_type } => {
                format!("write relationships of type `{resource_type}`")
            }
        }
    }
}

// ---- caller ids ----------------------------------------------------------------------

/// Identities Tessera gives callers itself; JWTs and grants may not use them.
pub(crate) fn reserved_caller_id(id: &str) -> bool {
    id == super::ANONYMOUS_CALLER_ID || id.starts_with(super::PRESHARED_CALLER_PREFIX)
}

/// The object id of a caller: object ids allow only `[a-zA-Z0-9/_|-=+]`, while subjects may
/// be e-mail addresses or URLs, so every other byte (and `=` itself) is written as `=XX`
/// (hex). Ids made only of allowed characters stay readable in the store.
pub fn caller_object_id(caller_id: &str) -> String {
    let mut out = String::with_capacity(caller_id.len());
    for &b in caller_id.as_bytes() {
        let c = char::from(b);
        if b.is_ascii() && b != b'=' && crate::model::validation::is_object_id_char(c) {
            out.push(c);
        } else {
            out.push_str(&format!("={b:02x}"));
        }
    }
    out
}

/// The caller id of an encoded object id, or `None` when it is not a valid encoding.
pub fn caller_from_object_id(object_id: &str) -> Option<String> {
    let bytes = object_id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Checks a caller id given to [`grant`]/[`revoke`].
fn validate_caller_id(caller_id: &str) -> Result<(), AccessError> {
    let invalid = |reason: &str| AccessError::InvalidCaller {
        caller: caller_id
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect(),
        reason: reason.to_string(),
    };
    if caller_id.trim().is_empty() {
        return Err(invalid("a caller id must not be empty"));
    }
    if caller_id.len() > MAX_CALLER_ID_LEN {
        return Err(invalid(
            "a caller id is at most 256 bytes long (JWT subjects beyond that are refused)",
        ));
    }
    if caller_id.chars().any(char::is_control) {
        return Err(invalid("a caller id must not contain control characters"));
    }
    if reserved_caller_id(caller_id) {
        return Err(invalid(
            "this identity is reserved: preshared-key and anonymous callers are always administrators",
        ));
    }
    Ok(())
}

fn caller_subject(caller_id: &str) -> SubjectRef {
    SubjectRef {
        object: ObjectRef::new(CALLER_TYPE, caller_object_id(caller_id)),
        relation: None,
    }
}

// ---- grant, revoke, list -------------------------------------------------------------

/// Errors of [`grant`], [`revoke`] and [`list`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("invalid caller `{caller}`: {reason}")]
    InvalidCaller { caller: String, reason: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<AccessError> for ServiceError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::InvalidCaller { .. } => {
                ServiceError::new(ErrorKind::InvalidArgument, e.to_string())
            }
            AccessError::Service(s) => s,
        }
    }
}

impl From<crate::store::StoreError> for AccessError {
    fn from(e: crate::store::StoreError) -> Self {
        AccessError::Service(e.into())
    }
}

/// One stored grant: `caller` holds `capability`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessGrant {
    pub caller: String,
    pub capability: Capability,
}

impl fmt::Display for AccessGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.caller, self.capability)
    }
}

fn grant_relationship(caller_id: &str, capability: &Capability) -> Relationship {
    let (resource, relation) = capability.grant_slot();
    Relationship::new(resource, relation, caller_subject(caller_id))
}

/// Grants `capability` to the caller identified by `caller_id` (a JWT subject). Idempotent.
/// `granted_by` is recorded in the change log. Returns the revision of the write.
pub fn grant(
    tessera: &Tessera,
    caller_id: &str,
    capability: &Capability,
    granted_by: Option<&str>,
) -> Result<Revision, AccessError> {
    validate_caller_id(caller_id)?;
    let relationship = grant_relationship(caller_id, capability);
    Ok(tessera.store().write(WriteTransaction {
        updates: vec![RelationshipUpdate {
            op: WriteOp::Touch,
            relationship,
        }],
        preconditions: Vec::new(),
        metadata: Default::default(),
        caller: granted_by.map(str::to_string),
        schema_revision: None,
    })?)
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The capabilities revoked; empty when the caller held none of those asked for.
    pub revoked: Vec<Capability>,
    /// The revision from which they are gone: the revocation's own write, or, when there was
    /// nothing to revoke, the revision at which that was observed (nothing is written then).
    pub revision: Revision,
}

/// Revokes `capability` from `caller_id`. Returns whether the caller held exactly that grant
/// (revoking `write:document` does not touch a `write:*` or `admin` grant). Effective on the
/// caller's next call.
pub fn revoke(
    tessera: &Tessera,
    caller_id: &str,
    capability: &Capability,
    revoked_by: Option<&str>,
) -> Result<bool, AccessError> {
    Ok(
        !revoke_with_revision(tessera, caller_id, capability, revoked_by)?
            .revoked
            .is_empty(),
    )
}

/// Like [`revoke`], also reporting the revision the revocation is visible at.
pub fn revoke_with_revision(
    tessera: &Tessera,
    caller_id: &str,
    capability: &Capability,
    revoked_by: Option<&str>,
) -> Result<Revocation, AccessError> {
    validate_caller_id(caller_id)?;
    let relationship = grant_relationship(caller_id, capability);
    let store = tessera.store();
    let head = store.head_revision()?;
    let snapshot = store.snapshot(head)?;
    let filter = exact_filter(&relationship);
    let existed = snapshot.query(&filter, None)?.next().transpose()?.is_some();
    if !existed {
        return Ok(Revocation {
            revoked: Vec::new(),
            revision: head,
        });
    }
    let revision = store.write(WriteTransaction {
        updates: vec![RelationshipUpdate {
            op: WriteOp::Delete,
            relationship,
        }],
        preconditions: Vec::new(),
        metadata: Default::default(),
        caller: revoked_by.map(str::to_string),
        schema_revision: None,
    })?;
    Ok(Revocation {
        revoked: vec![capability.clone()],
        revision,
    })
}

/// Revokes every capability of `caller_id` in one transaction; returns what was revoked.
pub fn revoke_all(
    tessera: &Tessera,
    caller_id: &str,
    revoked_by: Option<&str>,
) -> Result<Vec<Capability>, AccessError> {
    Ok(revoke_all_with_revision(tessera, caller_id, revoked_by)?.revoked)
}

/// Like [`revoke_all`], also reporting the revision the revocation is visible at.
pub fn revoke_all_with_revision(
    tessera: &Tessera,
    caller_id: &str,
    revoked_by: Option<&str>,
) -> Result<Revocation, AccessError> {
    validate_caller_id(caller_id)?;
    let (grants, head) = read_grants(tessera, Some(caller_id))?;
    if grants.is_empty() {
        return Ok(Revocation {
            revoked: Vec::new(),
            revision: head,
        });
    }
    let updates = grants
        .iter()
        .map(|g| RelationshipUpdate {
            op: WriteOp::Delete,
            relationship: grant_relationship(caller_id, &g.capability),
        })
        .collect();
    let revision = tessera.store().write(WriteTransaction {
        updates,
        preconditions: Vec::new(),
        metadata: Default::default(),
        caller: revoked_by.map(str::to_string),
        schema_revision: None,
    })?;
    Ok(Revocation {
        revoked: grants.into_iter().map(|g| g.capability).collect(),
        revision,
    })
}

/// Every stored grant at the newest revision, sorted by caller then capability.
pub fn list(tessera: &Tessera) -> Result<Vec<AccessGrant>, AccessError> {
    Ok(read_grants(tessera, None)?.0)
}

/// The grants of one caller, sorted.
pub fn list_for(tessera: &Tessera, caller_id: &str) -> Result<Vec<AccessGrant>, AccessError> {
    Ok(read_grants(tessera, Some(caller_id))?.0)
}

/// The grants of every caller (`None`) or of one, sorted, with the revision they were read at
/// (the newest). Unlike [`list_for`], a caller id that could never hold a grant (empty, too
/// long, reserved) is refused with [`AccessError::InvalidCaller`] rather than listed as empty.
pub fn list_with_revision(
    tessera: &Tessera,
    caller_id: Option<&str>,
) -> Result<(Vec<AccessGrant>, Revision), AccessError> {
    if let Some(id) = caller_id {
        validate_caller_id(id)?;
    }
    read_grants(tessera, caller_id)
}

fn read_grants(
    tessera: &Tessera,
    caller_id: Option<&str>,
) -> Result<(Vec<AccessGrant>, Revision), AccessError> {
    let store = tessera.store();
    let head = store.head_revision()?;
    let snapshot = store.snapshot(head)?;
    let subject = caller_id.map(|id| SubjectFilter {
        subject_type: CALLER_TYPE.to_string(),
        subject_id: Some(caller_object_id(id)),
        relation: SubjectRelationFilter::Ellipsis,
    });
    let mut out = Vec::new();
    for resource_type in [SYSTEM_TYPE, RESOURCE_TYPE_TYPE] {
        let filter = RelationshipFilter {
            resource_type: Some(resource_type.to_string()),
            subject: subject.clone(),
            ..Default::default()
        };
        for r in snapshot.query(&filter, None)? {
            let r = r?;
            if r.subject.object.object_type != CALLER_TYPE || r.subject.relation.is_some() {
                continue;
            }
            let (Some(capability), Some(caller)) = (
                Capability::from_grant(&r.resource, &r.relation),
                caller_from_object_id(&r.subject.object.object_id),
            ) else {
                continue;
            };
            out.push(AccessGrant { caller, capability });
        }
    }
    out.sort();
    Ok((out, head))
}

fn exact_filter(r: &Relationship) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(r.resource.object_type.clone()),
        resource_id: Some(r.resource.object_id.clone()),
        resource_id_prefix: None,
        relation: Some(r.relation.clone()),
        subject: Some(SubjectFilter {
            subject_type: r.subject.object.object_type.clone(),
            subject_id: Some(r.subject.object.object_id.clone()),
            relation: SubjectRelationFilter::Ellipsis,
        }),
    }
}

// ---- evaluation ----------------------------------------------------------------------

/// Does the (JWT) caller hold `capability`, at the newest revision?
pub(crate) fn holds(
    tessera: &Tessera,
    caller_id: &str,
    capability: &Capability,
) -> Result<bool, ServiceError> {
    if reserved_caller_id(caller_id) || caller_id.len() > MAX_CALLER_ID_LEN {
        return Ok(false);
    }
    let b = builtin();
    let store = tessera.store();
    let snapshot = store.snapshot(store.head_revision()?)?;
    let evaluator =
        Evaluator::with_index(&b.schema, &b.index, &*snapshot, &tessera.config().engine);
    let subject = caller_subject(caller_id);
    let context = Context::new();
    let system = ObjectRef::new(SYSTEM_TYPE, SYSTEM_ID);
    let check = |resource: &ObjectRef, permission: &str| -> Result<bool, ServiceError> {
        Ok(evaluator.check(resource, permission, &subject, &context)? == CheckOutcome::Has)
    };
    match capability {
        Capability::Admin => check(&system, "manage"),
        Capability::WriteSchema => check(&system, "write_schema"),
        Capability::Read => check(&system, "read"),
        Capability::WriteAnyRelationships => check(&system, "write_relationships"),
        Capability::WriteRelationships { resource_type } => {
            if check(&system, "write_relationships")? {
                return Ok(true);
            }
            // A malformed type name cannot have been granted; the request's own validation
            // reports it once the caller is allowed to make such a request at all.
            if crate::model::validate_object_type(resource_type).is_err() {
                return Ok(false);
            }
            check(
                &ObjectRef::new(RESOURCE_TYPE_TYPE, resource_type.clone()),
                "write",
            )
        }
    }
}

/// The PERMISSION_DENIED message: what is missing, for whom, and how to grant it.
pub(crate) fn denial_message(caller_id: &str, capability: &Capability) -> String {
    let grantable = !reserved_caller_id(caller_id)
        && !matches!(capability, Capability::WriteRelationships { resource_type } if crate::model::validate_object_type(resource_type).is_err());
    if grantable {
        format!(
            "caller `{caller_id}` may not {} (grant with `tessera access grant {} {capability}`)",
            capability.describe(),
            shell_quote(caller_id)
        )
    } else {
        format!("caller `{caller_id}` may not {}", capability.describe())
    }
}

/// Quotes `s` for a POSIX shell when it holds anything beyond plain word characters.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@:/+=,%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_compiles_with_every_permission_used() {
        let b = builtin();
        for (t, rels) in [
            (
                SYSTEM_TYPE,
                &[
                    "admin",
                    "schema_writer",
                    "reader",
                    "relationship_writer",
                    "manage",
                    "write_schema",
                    "read",
                    "write_relationships",
                ][..],
            ),
            (RESOURCE_TYPE_TYPE, &["writer", "write"][..]),
        ] {
            for rel in rels {
                assert!(b.schema.relation(t, rel).is_some(), "{t}#{rel} missing");
            }
        }
        assert!(b.schema.definition(CALLER_TYPE).is_some());
    }

    #[test]
    fn capability_text_round_trips() {
        for text in [
            "admin",
            "schema-write",
            "read",
            "write:*",
            "write:document",
            "write:tenant/doc_type",
        ] {
            let c: Capability = text.parse().expect("valid capability");
            assert_eq!(c.to_string(), text);
        }
        assert_eq!(
            " write:doc ".parse::<Capability>(),
            Ok(Capability::WriteRelationships {
                resource_type: "doc".into()
            })
        );
    }

    #[test]
    fn capability_parse_errors_name_the_problem() {
        let e = "owner".parse::<Capability>().expect_err("unknown");
        assert!(
            e.to_string().contains("`owner`") && e.to_string().contains("write:<resource type>"),
            "{e}"
        );
        let e = "write".parse::<Capability>().expect_err("no type");
        assert!(e.to_string().contains("write:*"), "{e}");
        let e = "write:Doc".parse::<Capability>().expect_err("bad type");
        assert!(e.to_string().contains("lowercase"), "{e}");
        let e = "write:tessera/caller"
            .parse::<Capability>()
            .expect_err("reserved");
        assert!(e.to_string().contains("reserved"), "{e}");
        assert!("write:".parse::<Capability>().is_err());
        assert!("Admin".parse::<Capability>().is_err());
    }

    #[test]
    fn caller_ids_encode_injectively_into_valid_object_ids() {
        for id in [
            "svc-a",
            "svc@example.com",
            "https://idp/x y",
            "a=b",
            "=41",
            "ünïcode",
            "auth0|123",
            "x+y/z",
        ] {
            let enc = caller_object_id(id);
            crate::model::validate_object_id(&enc, false)
                .expect("encoded ids are valid object ids");
            assert_eq!(caller_from_object_id(&enc).as_deref(), Some(id));
        }
        assert_eq!(caller_object_id("svc-a"), "svc-a");
        assert_ne!(caller_object_id("=41"), caller_object_id("A"));
        assert_eq!(caller_from_object_id("=4"), None);
        assert_eq!(caller_from_object_id("=zz"), None);
        // The longest accepted caller id still fits an object id.
        let long = "\u{1F600}".repeat(MAX_CALLER_ID_LEN / 4);
        assert!(caller_object_id(&long).len() <= crate::model::validation::MAX_OBJECT_ID_LEN);
    }

    #[test]
    fn denial_message_names_caller_capability_and_fix() {
        let m = denial_message(
            "svc-a",
            &Capability::WriteRelationships {
                resource_type: "document".into(),
            },
        );
        assert_eq!(
            m,
            "caller `svc-a` may not write relationships of type `document` (grant with `tessera access grant svc-a write:document`)"
        );
        let m = denial_message("it's me", &Capability::Read);
        assert!(m.contains(r"grant 'it'\''s me' read"), "{m}");
    }
}
