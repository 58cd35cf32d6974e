//! `tessera.admin.v1.AccessService`: grant, revoke and list callers' capabilities on a running
//! server. Capabilities live in the reserved `tessera/` namespace, which the authzed services
//! refuse to touch; this service is the one way in over the wire.
//!
//! Every RPC needs the `admin` capability (preshared-key callers hold it). Grants and
//! revocations go through the store's ordinary write path, so they get a revision and a
//! change-log entry naming the admin, and the caller's next call is judged by them.

use tonic::{Request, Response, Status};

use crate::api::proto::tessera::admin::v1 as pb;
use crate::auth::{self, AccessGrant, Revocation};
use crate::model::Revision;
use crate::service::ServiceError;

use super::call::{Backend, Unary};
use super::convert;
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

fn grant_to_proto(g: AccessGrant) -> pb::AccessGrant {
    pb::AccessGrant {
        caller: g.caller,
        capability: g.capability.to_string(),
    }
}

pub struct Grant;

impl Unary for Grant {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "Grant";
    type Request = pb::GrantRequest;
    type Response = pb::GrantResponse;
    type Op = auth::Grant;

    fn request(req: pb::GrantRequest) -> Result<auth::Grant, ServiceError> {
        Ok(auth::Grant {
            caller: req.caller,
            capability: req.capability,
        })
    }

    fn response(revision: Revision) -> Result<pb::GrantResponse, ServiceError> {
        Ok(pb::GrantResponse {
            written_at: Some(convert::zookie(revision)),
        })
    }
}

pub struct Revoke;

impl Unary for Revoke {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "Revoke";
    type Request = pb::RevokeRequest;
    type Response = pb::RevokeResponse;
    type Op = auth::Revoke;

    fn request(req: pb::RevokeRequest) -> Result<auth::Revoke, ServiceError> {
        Ok(auth::Revoke {
            caller: req.caller,
            capability: req.capability,
            all: req.all,
        })
    }

    fn response(r: Revocation) -> Result<pb::RevokeResponse, ServiceError> {
        Ok(pb::RevokeResponse {
            revoked: r.revoked.iter().map(ToString::to_string).collect(),
            written_at: Some(convert::zookie(r.revision)),
        })
    }
}

pub struct List;

impl Unary for List {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "List";
    type Request = pb::ListRequest;
    type Response = pb::ListResponse;
    type Op = auth::ListGrants;

    fn request(req: pb::ListRequest) -> Result<auth::ListGrants, ServiceError> {
        Ok(auth::ListGrants {
            caller: (!req.caller.is_empty()).then_some(req.caller),
        })
    }

    fn response(
        (grants, revision): (Vec<AccessGrant>, Revision),
    ) -> Result<pb::ListResponse, ServiceError> {
        Ok(pb::ListResponse {
            grants: grants.into_iter().map(grant_to_proto).collect(),
            read_at: Some(convert::zookie(revision)),
        })
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn grant(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::GrantResponse>, Status> {
        self.backend.grpc_unary::<Grant>(request).await
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        self.backend.grpc_unary::<Revoke>(request).await
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        self.backend.grpc_unary::<List>(request).await
    }
}
