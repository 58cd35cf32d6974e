//! Callers: who is calling (bearer tokens: preshared keys or JWTs) and what they may do
//! (capabilities stored as relationships in a reserved namespace, checked by the engine).
//!
//! PUBLIC API CONTRACT (the gRPC layer codes against exactly this):
//! - `Auth::authenticate(authorization_header_value: Option<&str>) -> Result<Caller, AuthError>`
//! - `Auth::authorize(&Tessera, &Caller, &Capability) -> Result<(), AuthError>`
//! - `Auth::insecure()` accepts every call as an anonymous admin (`--insecure-no-auth`).
//!
//! Configuration (for `tessera serve`): [`AuthConfig`] → [`Auth::from_config`].
//! Access management (for `tessera access grant|revoke|list`): [`grant`], [`revoke`],
//! [`revoke_all`], [`list`], [`list_for`], with capabilities parsed from their textual
//! syntax (`admin`, `schema-write`, `read`, `write:*`, `write:<type>`) by `Capability::from_str`.
//!
//! Authentication: `authorization: bearer <token>` (scheme case-insensitive). A token equal
//! to a configured preshared key makes the caller `preshared-key:<index>`, an administrator;
//! otherwise it must be a JWT verified by a configured key, whose `sub` is the caller id.
//!
//! Authorization: preshared-key callers and, in insecure mode, anonymous callers may do
//! everything; a JWT caller may do what the relationships under `tessera/` grant it,
//! evaluated at the newest revision on every call, so revocations apply at once.

mod access;
mod config;
mod jwt;
mod operation;
mod preshared;
mod requests;

use std::fmt;
use std::sync::Arc;

pub use access::{
    AccessError, AccessGrant, BUILTIN_SCHEMA, CALLER_TYPE, CapabilityParseError, RESERVED_PREFIX,
    RESOURCE_TYPE_TYPE, SYSTEM_ID, SYSTEM_TYPE, caller_from_object_id, caller_object_id, grant,
    list, list_for, revoke, revoke_all,
};
pub use access::{Revocation, list_with_revision, revoke_all_with_revision, revoke_with_revision};
pub use config::{
    AuthConfig, AuthConfigError, DEFAULT_JWT_LEEWAY, JwtAlgorithm, JwtKeySource, MAX_JWT_LEEWAY,
    MIN_HMAC_SECRET_LEN, Secret,
};
pub use operation::Operation;
pub use requests::{Grant, ListGrants, Revoke};

use crate::service::{ErrorKind, ServiceError, Tessera};

/// The caller id of every call in insecure mode.
pub const ANONYMOUS_CALLER_ID: &str = "anonymous";
/// Preshared-key callers are `preshared-key:<index>` (the key's position in the configuration).
pub const PRESHARED_CALLER_PREFIX: &str = "preshared-key:";
/// Longest caller id (JWT `sub`) accepted, in bytes.
pub const MAX_CALLER_ID_LEN: usize = jwt::MAX_SUBJECT_LEN;
/// Longest `authorization` value examined; longer ones are refused unread.
pub const MAX_AUTHORIZATION_LEN: usize = 16 * 1024;

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// A configured preshared key: an administrator.
    PresharedKey,
    /// A verified JWT; the identity is its `sub` claim.
    Jwt,
    /// Authentication is disabled (`--insecure-no-auth`).
    Anonymous,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Stable identity: the JWT subject, `preshared-key:<n>`, or `anonymous`. Never a secret.
    pub id: String,
    pub kind: CallerKind,
}

impl Caller {
    /// The anonymous administrator of insecure mode.
    pub fn anonymous() -> Caller {
        Caller {
            id: ANONYMOUS_CALLER_ID.to_string(),
            kind: CallerKind::Anonymous,
        }
    }
}

/// What a call needs to be allowed to do. Textual form (`FromStr`/`Display`): `admin`,
/// `schema-write`, `read`, `write:*`, `write:<resource type>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Manage callers' capabilities; implies every other capability.
    Admin,
    /// Write the schema.
    WriteSchema,
    /// Read the schema, relationships, watch, check, expand, lookups.
    Read,
    /// Write (create/touch/delete/import) relationships whose resource has this type.
    WriteRelationships { resource_type: String },
    /// Write relationships of every resource type (`write:*`); needed by a delete whose
    /// filter names no resource type.
    WriteAnyRelationships,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(m) => ServiceError::new(ErrorKind::Unauthenticated, m),
            AuthError::PermissionDenied(m) => ServiceError::new(ErrorKind::PermissionDenied, m),
            AuthError::Service(s) => s,
        }
    }
}

struct Inner {
    insecure: bool,
    preshared: preshared::PresharedKeys,
    jwt: Option<jwt::JwtVerifier>,
}

/// Authentication and authorization of callers. Cheap to clone (shared state).
///
/// `Auth::default()` accepts nobody: every call is unauthenticated.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            inner: Arc::new(Inner {
                insecure: false,
                preshared: preshared::PresharedKeys::empty(),
                jwt: None,
            }),
        }
    }
}

/// Shows the configuration's shape (counts, key origins and algorithms), never a secret.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("insecure", &self.inner.insecure)
            .field("preshared_keys", &self.inner.preshared.len())
            .field("jwt", &self.inner.jwt)
            .finish()
    }
}

impl Auth {
    /// Every call is accepted as an anonymous administrator.
    pub fn insecure() -> Self {
        Auth {
            inner: Arc::new(Inner {
                insecure: true,
                preshared: preshared::PresharedKeys::empty(),
                jwt: None,
            }),
        }
    }

    /// Builds the authenticator of a configuration, loading and checking every key file.
    /// Refuses a configuration with no credentials unless it is explicitly insecure.
    pub fn from_config(config: AuthConfig) -> Result<Auth, AuthConfigError> {
        let has_credentials = !config.preshared_keys.is_empty() || !config.jwt_keys.is_empty();
        if config.insecure {
            if has_credentials {
                return Err(AuthConfigError::InsecureWithCredentials);
            }
            return Ok(Auth::insecure());
        }
        if !has_credentials {
            return Err(AuthConfigError::NoCredentials);
        }
        let preshared = preshared::PresharedKeys::new(&config.preshared_keys)?;
        let jwt = jwt::JwtVerifier::from_config(&config)?;
        Ok(Auth {
            inner: Arc::new(Inner {
                insecure: false,
                preshared,
                jwt,
            }),
        })
    }

    /// True in insecure mode (`--insecure-no-auth`): the server should say so loudly.
    pub fn is_insecure(&self) -> bool {
        self.inner.insecure
    }

    /// Identifies the caller from the `authorization` metadata value (`bearer <token>`).
    /// Messages never repeat the token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if self.inner.insecure {
            return Ok(Caller::anonymous());
        }
        let unauthenticated = |m: String| Err(AuthError::Unauthenticated(m));
        let Some(value) = authorization else {
            return unauthenticated(
                "missing `authorization` metadata: send `authorization: bearer <token>`".into(),
            );
        };
        if value.len() > MAX_AUTHORIZATION_LEN {
            return unauthenticated(format!(
                "the `authorization` metadata is longer than {MAX_AUTHORIZATION_LEN} bytes"
            ));
        }
        let value = value.trim();
        let (scheme, token) = match value.split_once(char::is_whitespace) {
            Some((s, t)) => (s, t.trim()),
            None => (value, ""),
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return unauthenticated(
                "malformed `authorization` metadata: expected `bearer <token>`".into(),
            );
        }
        if token.is_empty() {
            return unauthenticated(
                "the `authorization` metadata has an empty bearer token".into(),
            );
        }
        if let Some(index) = self.inner.preshared.find(token) {
            return Ok(Caller {
                id: format!("{PRESHARED_CALLER_PREFIX}{index}"),
                kind: CallerKind::PresharedKey,
            });
        }
        let Some(jwt) = &self.inner.jwt else {
            return unauthenticated(
                "the bearer token does not match any configured preshared key".into(),
            );
        };
        if token.split('.').count() != 3 {
            return unauthenticated(if !self.inner.preshared.is_empty() {
                "the bearer token is neither a configured preshared key nor a JWT".into()
            } else {
                "the bearer token is not a JWT (expected three base64url parts separated by `.`)"
                    .into()
            });
        }
        let subject = jwt.verify(token).map_err(AuthError::Unauthenticated)?;
        if access::reserved_caller_id(&subject) {
            return unauthenticated(format!(
                "the JWT subject `{subject}` is reserved for Tessera's own callers"
            ));
        }
        Ok(Caller {
            id: subject,
            kind: CallerKind::Jwt,
        })
    }

    /// Allows `operation` when `caller` holds every capability it needs
    /// ([`Operation::required_capabilities`], the one table of what each operation needs).
    /// Blocking: JWT callers' capabilities are evaluated by the engine.
    pub fn authorize_operation(
        &self,
        tessera: &Tessera,
        caller: &Caller,
        operation: &Operation,
    ) -> Result<(), AuthError> {
        for capability in operation.required_capabilities() {
            self.authorize(tessera, caller, &capability)?;
        }
        Ok(())
    }

    /// Allows the call when `caller` holds `capability`: preshared-key callers (and anonymous
    /// ones in insecure mode) always do; JWT callers per the grants at the newest revision.
    pub fn authorize(
        &self,
        tessera: &Tessera,
        caller: &Caller,
        capability: &Capability,
    ) -> Result<(), AuthError> {
        let allowed = match caller.kind {
            CallerKind::PresharedKey => true,
            CallerKind::Anonymous => self.inner.insecure,
            CallerKind::Jwt => access::holds(tessera, &caller.id, capability)?,
        };
        if allowed {
            Ok(())
        } else if caller.kind == CallerKind::Anonymous {
            Err(AuthError::PermissionDenied(
                "anonymous callers are only allowed when the server runs with `--insecure-no-auth`"
                    .into(),
            ))
        } else {
            Err(AuthError::PermissionDenied(access::denial_message(
                &caller.id, capability,
            )))
        }
    }
}
