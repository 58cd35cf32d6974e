//! Authorization: capabilities granted and revoked as relationships in the reserved
//! `tessera/` namespace and checked by the engine at the newest revision on every call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tessera::auth::{
    self, AccessError, AccessGrant, Auth, AuthError, Caller, CallerKind, Capability,
};
use tessera::model::{RelationshipFilter, parse_relationship};
use tessera::service::{ErrorKind, ServiceConfig, Tessera};
use tessera::store::memory::MemoryStore;
use tessera::store::{RelationshipUpdate, WriteOp};

const SCHEMA: &str = "definition user {}\n\
definition folder { relation viewer: user }\n\
definition document { relation viewer: user }\n";

fn tessera() -> Tessera {
    let t = Tessera::new(Arc::new(MemoryStore::new()), ServiceConfig::default());
    t.write_schema(SCHEMA, None).unwrap();
    t
}

fn jwt(id: &str) -> Caller {
    Caller {
        id: id.to_string(),
        kind: CallerKind::Jwt,
    }
}

fn cap(text: &str) -> Capability {
    text.parse().unwrap()
}

fn all_capabilities() -> Vec<Capability> {
    [
        "admin",
        "schema-write",
        "read",
        "write:*",
        "write:document",
        "write:folder",
    ]
    .into_iter()
    .map(cap)
    .collect()
}

fn denied(auth: &Auth, t: &Tessera, caller: &Caller, c: &Capability) -> String {
    match auth.authorize(t, caller, c) {
        Err(AuthError::PermissionDenied(m)) => m,
        other => panic!(
            "expected PERMISSION_DENIED for {} {c}, got {other:?}",
            caller.id
        ),
    }
}

/// An authenticator that has credentials configured (JWT callers are judged by grants).
fn secure_auth() -> Auth {
    Auth::from_config(auth::AuthConfig {
        preshared_keys: vec![auth::Secret::new("ops-key")],
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_caller_without_grants_may_do_nothing() {
    let t = tessera();
    let auth = secure_auth();
    for c in all_capabilities() {
        denied(&auth, &t, &jwt("svc-a"), &c);
    }
}

#[test]
fn grant_allows_and_revoke_denies_on_the_very_next_call() {
    let t = tessera();
    let auth = secure_auth();
    let svc = jwt("svc-a");
    let read = cap("read");
    auth::grant(&t, "svc-a", &read, Some("preshared-key:0")).unwrap();
    auth.authorize(&t, &svc, &read).unwrap();
    // Read does not imply writing.
    denied(&auth, &t, &svc, &cap("write:document"));
    assert!(auth::revoke(&t, "svc-a", &read, None).unwrap());
    denied(&auth, &t, &svc, &read);
    // Revoking again reports that there was nothing to revoke.
    assert!(!auth::revoke(&t, "svc-a", &read, None).unwrap());
}

#[test]
fn write_capability_is_per_resource_type() {
    let t = tessera();
    let auth = secure_auth();
    let svc = jwt("svc-a");
    auth::grant(&t, "svc-a", &cap("write:document"), None).unwrap();
    auth.authorize(&t, &svc, &cap("write:document")).unwrap();
    let m = denied(&auth, &t, &svc, &cap("write:folder"));
    assert_eq!(
        m,
        "caller `svc-a` may not write relationships of type `folder` (grant with `tessera access grant svc-a write:folder`)"
    );
    denied(&auth, &t, &svc, &cap("write:*"));
    denied(&auth, &t, &svc, &cap("read"));
    // Another caller's grant does not leak.
    denied(&auth, &t, &jwt("svc-b"), &cap("write:document"));
}

#[test]
fn write_star_covers_every_type_but_not_schema_or_admin() {
    let t = tessera();
    let auth = secure_auth();
    let svc = jwt("svc-w");
    auth::grant(&t, "svc-w", &cap("write:*"), None).unwrap();
    for c in [
        "write:document",
        "write:folder",
        "write:not_yet_defined",
        "write:*",
    ] {
        auth.authorize(&t, &svc, &cap(c)).unwrap();
    }
    denied(&auth, &t, &svc, &cap("schema-write"));
    denied(&auth, &t, &svc, &cap("admin"));
    // Revoking write:document leaves write:* (a separate grant) in force.
    assert!(!auth::revoke(&t, "svc-w", &cap("write:document"), None).unwrap());
    auth.authorize(&t, &svc, &cap("write:document")).unwrap();
}

#[test]
fn admin_implies_every_capability() {
    let t = tessera();
    let auth = secure_auth();
    let boss = jwt("boss@example.com");
    auth::grant(&t, "boss@example.com", &cap("admin"), None).unwrap();
    for c in all_capabilities() {
        auth.authorize(&t, &boss, &c).unwrap();
    }
    auth::revoke(&t, "boss@example.com", &cap("admin"), None).unwrap();
    for c in all_capabilities() {
        denied(&auth, &t, &boss, &c);
    }
}

#[test]
fn schema_write_is_its_own_capability() {
    let t = tessera();
    let auth = secure_auth();
    let svc = jwt("schema-bot");
    auth::grant(&t, "schema-bot", &cap("schema-write"), None).unwrap();
    auth.authorize(&t, &svc, &cap("schema-write")).unwrap();
    let m = denied(&auth, &t, &svc, &cap("admin"));
    assert!(
        m.contains("may not manage access") && m.contains("schema-bot admin"),
        "{m}"
    );
}

#[test]
fn preshared_callers_are_admins_without_grants() {
    let t = tessera();
    let auth = secure_auth();
    let ops = auth.authenticate(Some("Bearer ops-key")).unwrap();
    for c in all_capabilities() {
        auth.authorize(&t, &ops, &c).unwrap();
    }
    assert!(auth::list(&t).unwrap().is_empty());
}

#[test]
fn insecure_mode_makes_anonymous_an_admin_and_only_there() {
    let t = tessera();
    let insecure = Auth::insecure();
    let anon = insecure.authenticate(None).unwrap();
    assert_eq!(anon.kind, CallerKind::Anonymous);
    for c in all_capabilities() {
        insecure.authorize(&t, &anon, &c).unwrap();
    }
    // An anonymous caller presented to a secured server is refused.
    let m = denied(&secure_auth(), &t, &anon, &cap("read"));
    assert!(m.contains("--insecure-no-auth"), "{m}");
}

#[test]
fn list_shows_every_grant_with_readable_caller_ids() {
    let t = tessera();
    auth::grant(&t, "svc@example.com", &cap("write:document"), None).unwrap();
    auth::grant(&t, "svc@example.com", &cap("read"), None).unwrap();
    auth::grant(&t, "https://idp/users/7", &cap("admin"), None).unwrap();
    // Granting twice is harmless.
    auth::grant(&t, "https://idp/users/7", &cap("admin"), None).unwrap();
    let grants = auth::list(&t).unwrap();
    let shown: Vec<String> = grants.iter().map(AccessGrant::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "https://idp/users/7 admin",
            "svc@example.com read",
            "svc@example.com write:document"
        ]
    );
    let mine = auth::list_for(&t, "svc@example.com").unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|g| g.caller == "svc@example.com"));

    let revoked = auth::revoke_all(&t, "svc@example.com", None).unwrap();
    assert_eq!(revoked, vec![cap("read"), cap("write:document")]);
    assert_eq!(auth::list(&t).unwrap().len(), 1);
    denied(&secure_auth(), &t, &jwt("svc@example.com"), &cap("read"));
}

#[test]
fn invalid_or_reserved_caller_ids_cannot_be_granted() {
    let t = tessera();
    for bad in ["", "   ", "preshared-key:0", "anonymous", "a\nb"] {
        let e = auth::grant(&t, bad, &cap("read"), None).unwrap_err();
        assert!(
            matches!(e, AccessError::InvalidCaller { .. }),
            "{bad:?}: {e}"
        );
    }
    let long = "x".repeat(300);
    assert!(auth::grant(&t, &long, &cap("read"), None).is_err());
    assert!(auth::list(&t).unwrap().is_empty());
}

#[test]
fn grants_live_in_the_reserved_namespace_out_of_users_reach() {
    let t = tessera();
    let revision = auth::grant(&t, "svc-a", &cap("admin"), Some("preshared-key:0")).unwrap();
    // Stored as a relationship, attributed to who granted it.
    let changes = t
        .changes_after(tessera::model::Revision(revision.0 - 1), 10)
        .unwrap();
    let raw = t
        .store()
        .read_changes(tessera::model::Revision(revision.0 - 1), 10)
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].caller.as_deref(), Some("preshared-key:0"));
    assert_eq!(
        raw[0].changes[0].relationship,
        parse_relationship("tessera/system:main#admin@tessera/caller:svc-a").unwrap()
    );
    // The API's change feed and reads do not show it...
    assert!(changes.iter().all(|c| c.changes.is_empty()), "{changes:?}");
    let view = t.view_at(t.head_revision().unwrap()).unwrap();
    let all = t
        .read_relationships(
            &view,
            &RelationshipFilter {
                relation: Some("admin".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
    assert!(all.is_empty(), "{all:?}");
    // ...and user writes cannot forge one.
    let forged = parse_relationship("tessera/system:main#admin@tessera/caller:svc-b").unwrap();
    let e = t
        .write_relationships(
            vec![RelationshipUpdate {
                op: WriteOp::Touch,
                relationship: forged,
            }],
            vec![],
            None,
            Default::default(),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    let e = t
        .write_schema(
            "definition tessera/caller {}\ndefinition document { relation viewer: tessera/caller }",
            None,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    denied(&secure_auth(), &t, &jwt("svc-b"), &cap("admin"));
}

#[test]
fn authorization_leaves_no_trace_in_the_data() {
    let t = tessera();
    let auth = secure_auth();
    let before = t.head_revision().unwrap();
    for c in all_capabilities() {
        let _ = auth.authorize(&t, &jwt("svc-a"), &c);
    }
    let _ = auth.authenticate(Some("bearer wrong"));
    assert_eq!(t.head_revision().unwrap(), before);
}

#[test]
fn errors_map_to_permission_denied_and_unauthenticated() {
    let t = tessera();
    let auth = secure_auth();
    let e: tessera::service::ServiceError = auth
        .authorize(&t, &jwt("svc-a"), &cap("read"))
        .unwrap_err()
        .into();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    let e: tessera::service::ServiceError = auth.authenticate(None).unwrap_err().into();
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
}
