//! Managing callers' capabilities as service requests (`tessera.admin.v1.AccessService` runs
//! these through [`crate::service::Tessera::execute`]). Every one needs the `admin` capability;
//! the request is validated only after that, so a non-admin learns nothing about its request.

use crate::model::Revision;
use crate::service::{ErrorKind, Request, ServiceError, Tessera};

use super::{AccessGrant, Caller, Capability, Operation, Revocation};

fn invalid(field: &str, message: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(ErrorKind::InvalidArgument, format!("{field}: {message}"))
}

/// A capability in its textual form; the field is named in the error.
fn capability(field: &str, text: &str) -> Result<Capability, ServiceError> {
    if text.trim().is_empty() {
        return Err(invalid(
            field,
            "required: `admin`, `schema-write`, `read`, `write:*` or `write:<resource type>`",
        ));
    }
    text.parse::<Capability>().map_err(|e| invalid(field, e))
}

/// Grant `capability` (textual form) to the caller with id `caller`.
#[derive(Debug, Clone)]
pub struct Grant {
    pub caller: String,
    pub capability: String,
}

impl Request for Grant {
    type Output = Revision;
    fn operation(&self) -> Operation {
        Operation::ManageAccess
    }
    fn run(self, t: &Tessera, admin: &Caller) -> Result<Revision, ServiceError> {
        let capability = capability("capability", &self.capability)?;
        let revision = super::grant(t, &self.caller, &capability, Some(&admin.id))?;
        tracing::info!(caller = %self.caller, %capability, "capability granted");
        Ok(revision)
    }
}

/// Revoke one capability, or with `all` every capability, of the caller with id `caller`.
#[derive(Debug, Clone)]
pub struct Revoke {
    pub caller: String,
    pub capability: String,
    pub all: bool,
}

impl Request for Revoke {
    type Output = Revocation;
    fn operation(&self) -> Operation {
        Operation::ManageAccess
    }
    fn run(self, t: &Tessera, admin: &Caller) -> Result<Revocation, ServiceError> {
        let by = Some(admin.id.as_str());
        let revocation = match (self.capability.trim().is_empty(), self.all) {
            (true, true) => super::revoke_all_with_revision(t, &self.caller, by)?,
            (false, false) => {
                let capability = capability("capability", &self.capability)?;
                super::revoke_with_revision(t, &self.caller, &capability, by)?
            }
            (false, true) => {
                return Err(invalid(
                    "capability",
                    "give either a capability or `all`, not both",
                ));
            }
            (true, false) => {
                return Err(invalid(
                    "capability",
                    "required unless `all` is set (to revoke every capability)",
                ));
            }
        };
        if !revocation.revoked.is_empty() {
            let revoked: Vec<String> = revocation.revoked.iter().map(ToString::to_string).collect();
            tracing::info!(
                caller = %self.caller,
                revoked = %revoked.join(","),
                "capabilities revoked"
            );
        }
        Ok(revocation)
    }
}

/// Every grant, or those of one caller.
#[derive(Debug, Clone)]
pub struct ListGrants {
    pub caller: Option<String>,
}

impl Request for ListGrants {
    type Output = (Vec<AccessGrant>, Revision);
    fn operation(&self) -> Operation {
        Operation::ManageAccess
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<Self::Output, ServiceError> {
        Ok(super::list_with_revision(t, self.caller.as_deref())?)
    }
}
