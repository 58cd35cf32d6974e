//! The route table: every HTTP route, declared once. The router ([`super::router`]) is built
//! from it, and so is the OpenAPI document ([`super::openapi`]), so the two cannot disagree.

use std::future::Future;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument as _;

use crate::api::access::{Grant, List, Revoke};
use crate::api::call::{Backend, Rpc, ServerStream, Unary};
use crate::api::permissions::{
    CheckBulkPermissions, CheckPermission, DeleteRelationships, ExpandPermissionTree,
    LookupResources, LookupSubjects, ReadRelationships, WriteRelationships,
};
use crate::api::schema::{ReadSchema, WriteSchema};
use crate::api::watch::Watch;
use crate::auth::Caller;
use crate::service::{ErrorKind, ServiceError};

use super::authzen::{self, *};
use super::error::HttpError;
use super::{Call, Handler, json, openapi, respond_json, v1};

/// Where a body's JSON schema comes from.
#[derive(Clone, Copy)]
pub enum BodySchema {
    /// A protobuf message, by full name, in the protobuf JSON mapping.
    Proto(fn() -> String),
    /// A Rust type deriving `JsonSchema`.
    Rust(fn(&mut SchemaGenerator) -> schemars::Schema),
    /// A JSON document without a fixed schema (the OpenAPI document itself).
    Any,
    /// No body.
    None,
}

/// One route.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// A one-line description (the OpenAPI summary).
    pub summary: &'static str,
    /// The OpenAPI tag grouping the route.
    pub tag: &'static str,
    pub request: BodySchema,
    pub response: BodySchema,
    /// The response is newline-delimited JSON (`{"result": …}` lines).
    pub streaming: bool,
    /// Needs `Authorization: Bearer …`.
    pub authenticated: bool,
    pub handler: Handler,
}

const V1: &str = "authzed.api.v1";
const AUTHZEN: &str = "AuthZEN 1.0";
const DOCS: &str = "Documents";

fn proto<T: prost::Name>() -> String {
    T::full_name()
}

fn rust<T: JsonSchema>(generator: &mut SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

fn unary<U: Unary>(path: &'static str, summary: &'static str) -> Route {
    Route {
        method: Method::POST,
        path,
        summary,
        tag: V1,
        request: BodySchema::Proto(proto::<U::Request>),
        response: BodySchema::Proto(proto::<U::Response>),
        streaming: false,
        authenticated: true,
        handler: |call| Box::pin(v1::unary::<U>(call)),
    }
}

fn stream<S: ServerStream>(path: &'static str, summary: &'static str) -> Route {
    Route {
        method: Method::POST,
        path,
        summary,
        tag: V1,
        request: BodySchema::Proto(proto::<S::Request>),
        response: BodySchema::Proto(proto::<S::Item>),
        streaming: true,
        authenticated: true,
        handler: |call| Box::pin(v1::stream::<S>(call)),
    }
}

fn authzen<Req: JsonSchema, Resp: JsonSchema>(
    path: &'static str,
    summary: &'static str,
    handler: Handler,
) -> Route {
    Route {
        method: Method::POST,
        path,
        summary,
        tag: AUTHZEN,
        request: BodySchema::Rust(rust::<Req>),
        response: BodySchema::Rust(rust::<Resp>),
        streaming: false,
        authenticated: true,
        handler,
    }
}

/// Every route the HTTP server serves.
pub fn routes() -> Vec<Route> {
    vec![
        unary::<ReadSchema>("/v1/schema/read", "Read the schema (ReadSchema)."),
        unary::<WriteSchema>("/v1/schema/write", "Replace the schema (WriteSchema)."),
        stream::<ReadRelationships>(
            "/v1/relationships/read",
            "Stream the relationships matching a filter (ReadRelationships).",
        ),
        unary::<WriteRelationships>(
            "/v1/relationships/write",
            "Create, touch and delete relationships atomically (WriteRelationships).",
        ),
        unary::<DeleteRelationships>(
            "/v1/relationships/delete",
            "Delete the relationships matching a filter (DeleteRelationships).",
        ),
        unary::<CheckPermission>(
            "/v1/permissions/check",
            "Check whether a subject has a permission on a resource (CheckPermission).",
        ),
        unary::<CheckBulkPermissions>(
            "/v1/permissions/checkbulk",
            "Check many permissions at one revision (CheckBulkPermissions).",
        ),
        unary::<ExpandPermissionTree>(
            "/v1/permissions/expand",
            "Expand a permission one level into its userset tree (ExpandPermissionTree).",
        ),
        stream::<LookupResources>(
            "/v1/permissions/resources",
            "Stream the resources on which a subject has a permission (LookupResources).",
        ),
        stream::<LookupSubjects>(
            "/v1/permissions/subjects",
            "Stream the subjects that have a permission on a resource (LookupSubjects).",
        ),
        stream::<Watch>(
            "/v1/watch",
            "Stream committed changes until the client disconnects (Watch).",
        ),
        unary::<Grant>(
            "/tessera/admin/v1/access/grant",
            "Grant a caller a capability (tessera.admin.v1.AccessService; admins only).",
        )
        .tagged("tessera.admin.v1"),
        unary::<Revoke>(
            "/tessera/admin/v1/access/revoke",
            "Revoke a caller's capabilities (tessera.admin.v1.AccessService; admins only).",
        )
        .tagged("tessera.admin.v1"),
        unary::<List>(
            "/tessera/admin/v1/access/list",
            "List callers' capabilities (tessera.admin.v1.AccessService; admins only).",
        )
        .tagged("tessera.admin.v1"),
        authzen::<EvaluationRequest, EvaluationResponse>(
            "/access/v1/evaluation",
            "AuthZEN access evaluation: may the subject perform the action on the resource?",
            |call| {
                Box::pin(run_authzen(call, |b, c, r| async move {
                    to_json(&authzen::evaluation(&b, c, r).await?)
                }))
            },
        ),
        authzen::<EvaluationsRequest, EvaluationsResponse>(
            "/access/v1/evaluations",
            "AuthZEN access evaluations: many decisions with shared defaults.",
            |call| {
                Box::pin(run_authzen(call, |b, c, r| async move {
                    authzen::evaluations(&b, c, r).await
                }))
            },
        ),
        authzen::<SubjectSearchRequest, SubjectSearchResponse>(
            "/access/v1/search/subject",
            "AuthZEN subject search: which subjects may perform the action on the resource?",
            |call| {
                Box::pin(run_authzen(call, |b, c, r| async move {
                    to_json(&authzen::search_subject(&b, c, r).await?)
                }))
            },
        ),
        authzen::<ResourceSearchRequest, ResourceSearchResponse>(
            "/access/v1/search/resource",
            "AuthZEN resource search: on which resources may the subject perform the action?",
            |call| {
                Box::pin(run_authzen(call, |b, c, r| async move {
                    to_json(&authzen::search_resource(&b, c, r).await?)
                }))
            },
        ),
        authzen::<ActionSearchRequest, ActionSearchResponse>(
            "/access/v1/search/action",
            "AuthZEN action search: which actions may the subject perform on the resource?",
            |call| {
                Box::pin(run_authzen(call, |b, c, r| async move {
                    to_json(&authzen::search_action(&b, c, r).await?)
                }))
            },
        ),
        Route {
            method: Method::GET,
            path: "/.well-known/authzen-configuration",
            summary: "AuthZEN policy decision point metadata (no authentication).",
            tag: AUTHZEN,
            request: BodySchema::None,
            response: BodySchema::Rust(rust::<PdpMetadata>),
            streaming: false,
            authenticated: false,
            handler: |call| {
                Box::pin(async move {
                    match to_json(&authzen::metadata(call.headers())) {
                        Ok(v) => respond_json(StatusCode::OK, &v),
                        Err(e) => HttpError::from(e).into_response(),
                    }
                })
            },
        },
        Route {
            method: Method::GET,
            path: "/openapi.json",
            summary: "This API's OpenAPI 3.1 document (no authentication).",
            tag: DOCS,
            request: BodySchema::None,
            response: BodySchema::Any,
            streaming: false,
            authenticated: false,
            handler: |_| {
                Box::pin(async move {
                    match openapi::document() {
                        Ok(v) => respond_json(StatusCode::OK, v),
                        Err(e) => HttpError::from(e).into_response(),
                    }
                })
            },
        },
    ]
}

impl Route {
    fn tagged(mut self, tag: &'static str) -> Route {
        self.tag = tag;
        self
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, ServiceError> {
    serde_json::to_value(v).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("cannot write the response: {e}"),
        )
    })
}

/// An AuthZEN endpoint: authentication, the JSON body into `Req`, `f`, the JSON response.
async fn run_authzen<Req, F, Fut>(mut call: Call, f: F) -> Response
where
    Req: DeserializeOwned,
    F: FnOnce(Backend, Caller, Req) -> Fut,
    Fut: Future<Output = Result<Value, ServiceError>>,
{
    let rpc = Rpc::http(call.route);
    let span = rpc.span.clone();
    let outcome = async {
        let caller = call.authenticate()?;
        let body = call.body().await?;
        let what = format!("AuthZEN request for {}", call.route);
        let request: Req = serde_json::from_slice(&body).map_err(|e| json::bad_body(&what, e))?;
        Ok::<_, HttpError>(f(call.backend.clone(), caller, request).await?)
    }
    .instrument(span)
    .await;
    match outcome {
        Ok(v) => {
            rpc.succeed();
            respond_json(StatusCode::OK, &v)
        }
        Err(e) => {
            let error = rpc.fail(e.error);
            HttpError {
                status: e.status,
                error,
            }
            .into_response()
        }
    }
}
