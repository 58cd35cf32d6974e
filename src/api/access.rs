//! `tessera.admin.v1.AccessService`: grant, revoke and list callers' capabilities on a running
//! server. Capabilities live in the reserved `tessera/` namespace, which the authzed services
//! refuse to touch; this service is the one way in over the wire.
//!
//! Every RPC needs the `admin` capability (preshared-key callers hold it). Grants and
//! revocations go through the store's ordinary write path, so they get a revision and a
//! change-log entry naming the admin, and the caller's next call is judged by them.

use tonic::{Request, Response, Status};

use crate::api::proto::tessera::admin::v1 as pb;
use crate::auth::{self, AccessGrant, Capability, Revocation};
use crate::service::ServiceError;

use super::call::Backend;
use super::convert;
use super::error::invalid;
use pb::access_service_server::AccessService;

const SERVICE: &str = "tessera.admin.v1.AccessService";

/// The AccessService implementation.
pub struct AccessApi {
    backend: Backend,
}

impl AccessApi {
    pub(crate) fn new(backend: Backend) -> Self {
        AccessApi { backend }
    }
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

fn grant_to_proto(g: AccessGrant) -> pb::AccessGrant {
    pb::AccessGrant {
        caller: g.caller,
        capability: g.capability.to_string(),
    }
}

fn revoke_response(r: Revocation) -> pb::RevokeResponse {
    pb::RevokeResponse {
        revoked: r.revoked.iter().map(ToString::to_string).collect(),
        written_at: Some(convert::zookie(r.revision)),
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn grant(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::GrantResponse>, Status> {
        // Validation happens after authorization: a non-admin learns nothing about its request.
        self.backend
            .authorized_unary(
                SERVICE,
                "Grant",
                request,
                Capability::Admin,
                Ok,
                |b, admin, req| {
                    let capability = capability("capability", &req.capability)?;
                    let revision =
                        auth::grant(&b.tessera, &req.caller, &capability, Some(&admin.id))?;
                    tracing::info!(caller = %req.caller, %capability, "capability granted");
                    Ok(pb::GrantResponse {
                        written_at: Some(convert::zookie(revision)),
                    })
                },
            )
            .await
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        self.backend
            .authorized_unary(
                SERVICE,
                "Revoke",
                request,
                Capability::Admin,
                Ok,
                |b, admin, req| {
                    let by = Some(admin.id.as_str());
                    let revocation = match (req.capability.trim().is_empty(), req.all) {
                        (true, true) => {
                            auth::revoke_all_with_revision(&b.tessera, &req.caller, by)?
                        }
                        (false, false) => {
                            let capability = capability("capability", &req.capability)?;
                            auth::revoke_with_revision(&b.tessera, &req.caller, &capability, by)?
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
                        let revoked: Vec<String> =
                            revocation.revoked.iter().map(ToString::to_string).collect();
                        tracing::info!(
                            caller = %req.caller,
                            revoked = %revoked.join(","),
                            "capabilities revoked"
                        );
                    }
                    Ok(revoke_response(revocation))
                },
            )
            .await
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        self.backend
            .authorized_unary(
                SERVICE,
                "List",
                request,
                Capability::Admin,
                Ok,
                |b, _, req| {
                    let caller = (!req.caller.is_empty()).then_some(req.caller.as_str());
                    let (grants, revision) = auth::list_with_revision(&b.tessera, caller)?;
                    Ok(pb::ListResponse {
                        grants: grants.into_iter().map(grant_to_proto).collect(),
                        read_at: Some(convert::zookie(revision)),
                    })
                },
            )
            .await
    }
}
