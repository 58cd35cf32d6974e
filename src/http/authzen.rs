//! OpenID AuthZEN Authorization API 1.0 over Tessera: a policy decision point for any AuthZEN
//! enforcement point.
//!
//! Mapping (each request becomes a service request and runs the one authorized path; every
//! endpoint needs the `read` capability):
//! - `subject {type, id}` and `resource {type, id}` are objects: `type` is an object type of
//!   the schema, `id` is escaped into an object id ([`super::ids`]; results are unescaped).
//! - `action.name` is the permission (or relation) checked.
//! - The caveat context is `context`, plus every `subject.properties.K` as `subject_K`, every
//!   `resource.properties.K` as `resource_K` and every `action.properties.K` as `action_K`
//!   (so a caveat declares typed parameters such as `subject_role string`); a key given twice
//!   is refused.
//! - A decision is `true` only for a definite permission. A conditional answer (a caveat
//!   lacks context) is `false` with `context: {"conditional": true, "missing_context": [...]}`.
//! - Evaluations run at the newest revision (fully consistent): AuthZEN has no consistency
//!   tokens, so a decision never predates a write its caller has seen acknowledged.
//! - Evaluations (batch): top-level `subject`, `action`, `resource` and `context` are defaults
//!   each item may replace (each one whole); `options.evaluations_semantic` is `execute_all`
//!   (default), `deny_on_first_deny` or `permit_on_first_permit` (the answers stop after the
//!   first deny or permit). An item that cannot be evaluated is `false` with
//!   `context.error` (`status`, `code`, `message`, `reason`). Without `evaluations` the request
//!   is a single evaluation and the response a single decision. At most the bulk-check limit
//!   (`--max-bulk-check-items`) of items.
//! - Searches return definite results only (conditional ones are left out), ordered by id
//!   (subjects, resources) or name (actions), in pages: `page.limit` (default and maximum: the
//!   read page limit, `--max-read-relationships-limit`) and `page.token` from the previous
//!   response's `page.next_token` (empty when no page follows). A subject search may return
//!   `{type, id: "*"}`: every subject of the type (with `properties.excluded` listing those
//!   excluded from it).

use axum::http::HeaderMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::call::Backend;
use crate::auth::Caller;
use crate::consistency::Consistency;
use crate::engine::CheckOutcome;
use crate::model::{Context, ObjectRef, SubjectRef, WILDCARD_ID};
use crate::service::{self, CheckAnswer, CheckItem, ErrorKind, PageToken, ServiceError};

use super::error;
use super::ids;

/// The entity asking for access (AuthZEN §5.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subject {
    /// An object type of the schema (`user`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Any string (an email, a UUID); escaped into an object id. Omitted in a subject search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attributes, each passed to caveats as `subject_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// The thing access is asked for (AuthZEN §5.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resource {
    /// An object type of the schema (`document`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Any string; escaped into an object id. Omitted in a resource search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attributes, each passed to caveats as `resource_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// What the subject wants to do (AuthZEN §5.3): a permission or relation of the resource's type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Action {
    pub name: String,
    /// Attributes, each passed to caveats as `action_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// `POST /access/v1/evaluation`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EvaluationRequest {
    pub subject: Subject,
    pub action: Action,
    pub resource: Resource,
    /// Caveat context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// A decision (AuthZEN §6.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvaluationResponse {
    pub decision: bool,
    /// Why not: `{"conditional": true, "missing_context": [...]}` for a conditional answer,
    /// `{"error": {...}}` for an evaluation that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// One item of an evaluations request; what it leaves out comes from the request's defaults.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct EvaluationItem {
    #[serde(default)]
    pub subject: Option<Subject>,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub resource: Option<Resource>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// How a batch of evaluations runs (AuthZEN §7.1.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationsSemantic {
    /// Every item is evaluated.
    #[default]
    ExecuteAll,
    /// Evaluation stops after the first item that is not permitted.
    DenyOnFirstDeny,
    /// Evaluation stops after the first item that is permitted.
    PermitOnFirstPermit,
}

/// Options of an evaluations request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct EvaluationsOptions {
    #[serde(default)]
    pub evaluations_semantic: Option<EvaluationsSemantic>,
}

/// `POST /access/v1/evaluations`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct EvaluationsRequest {
    #[serde(default)]
    pub subject: Option<Subject>,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub resource: Option<Resource>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub evaluations: Option<Vec<EvaluationItem>>,
    #[serde(default)]
    pub options: Option<EvaluationsOptions>,
}

/// The decisions of an evaluations request, in item order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<EvaluationResponse>,
}

/// A search's paging request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct PageRequest {
    /// `next_token` of the previous page.
    #[serde(default)]
    pub token: Option<String>,
    /// Most results on this page (default and maximum: the server's read page limit).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A search's paging response.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PageResponse {
    /// Pass back as `page.token` for the next page; empty when there is none.
    pub next_token: String,
    /// How many results this page has.
    pub count: usize,
}

/// `POST /access/v1/search/subject`: who may do `action` on `resource`? (`subject.id` ignored.)
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SubjectSearchRequest {
    pub subject: Subject,
    pub action: Action,
    pub resource: Resource,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub page: Option<PageRequest>,
}

/// Subjects found.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SubjectSearchResponse {
    pub results: Vec<Subject>,
    pub page: PageResponse,
}

/// `POST /access/v1/search/resource`: on what may `subject` do `action`? (`resource.id`
/// ignored.)
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ResourceSearchRequest {
    pub subject: Subject,
    pub action: Action,
    pub resource: Resource,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub page: Option<PageRequest>,
}

/// Resources found.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ResourceSearchResponse {
    pub results: Vec<Resource>,
    pub page: PageResponse,
}

/// `POST /access/v1/search/action`: what may `subject` do on `resource`?
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ActionSearchRequest {
    pub subject: Subject,
    pub resource: Resource,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub page: Option<PageRequest>,
}

/// Actions found: the permissions and relations of the resource's type the subject has.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ActionSearchResponse {
    pub results: Vec<Action>,
    pub page: PageResponse,
}

/// `GET /.well-known/authzen-configuration`: the policy decision point's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PdpMetadata {
    pub policy_decision_point: String,
    pub access_evaluation_endpoint: String,
    pub access_evaluations_endpoint: String,
    pub search_subject_endpoint: String,
    pub search_resource_endpoint: String,
    pub search_action_endpoint: String,
}

// ---- translation --------------------------------------------------------------------------

fn invalid(field: &str, message: impl std::fmt::Display) -> ServiceError {
    crate::api::error::invalid(field, message)
}

fn object_type(field: &str, t: &str) -> Result<String, ServiceError> {
    crate::model::validate_object_type(t).map_err(|e| invalid(field, e))?;
    Ok(t.to_string())
}

fn object_id(field: &str, id: Option<&str>) -> Result<String, ServiceError> {
    let id = id.ok_or_else(|| invalid(field, "is required"))?;
    ids::to_object_id(id).map_err(|e| invalid(field, e))
}

fn subject_ref(field: &str, s: &Subject) -> Result<SubjectRef, ServiceError> {
    Ok(SubjectRef {
        object: ObjectRef::new(
            object_type(&format!("{field}.type"), &s.kind)?,
            object_id(&format!("{field}.id"), s.id.as_deref())?,
        ),
        relation: None,
    })
}

fn resource_ref(field: &str, r: &Resource) -> Result<ObjectRef, ServiceError> {
    Ok(ObjectRef::new(
        object_type(&format!("{field}.type"), &r.kind)?,
        object_id(&format!("{field}.id"), r.id.as_deref())?,
    ))
}

fn permission(field: &str, a: &Action) -> Result<String, ServiceError> {
    if a.name.is_empty() {
        return Err(invalid(&format!("{field}.name"), "is required"));
    }
    crate::model::validate_relation_name(&a.name)
        .map_err(|e| invalid(&format!("{field}.name"), e))?;
    Ok(a.name.clone())
}

/// The caveat context of a request: `context` plus the prefixed properties.
fn caveat_context(
    context: Option<&Map<String, Value>>,
    properties: [(&str, Option<&Map<String, Value>>); 3],
) -> Result<Context, ServiceError> {
    let mut out = context.cloned().unwrap_or_default();
    for (prefix, props) in properties {
        for (k, v) in props.into_iter().flatten() {
            let key = format!("{prefix}_{k}");
            if out.contains_key(&key) {
                return Err(invalid(
                    &format!("{prefix}.properties.{k}"),
                    format!("is also given as `context.{key}`; give it once"),
                ));
            }
            out.insert(key, v.clone());
        }
    }
    Ok(out)
}

fn check_item(
    prefix: &str,
    subject: Option<&Subject>,
    action: Option<&Action>,
    resource: Option<&Resource>,
    context: Option<&Map<String, Value>>,
) -> Result<CheckItem, ServiceError> {
    let required = |what: &str| invalid(&format!("{prefix}{what}"), "is required");
    let subject = subject.ok_or_else(|| required("subject"))?;
    let action = action.ok_or_else(|| required("action"))?;
    let resource = resource.ok_or_else(|| required("resource"))?;
    Ok(CheckItem {
        subject: subject_ref(&format!("{prefix}subject"), subject)?,
        permission: permission(&format!("{prefix}action"), action)?,
        resource: resource_ref(&format!("{prefix}resource"), resource)?,
        context: caveat_context(
            context,
            [
                ("subject", subject.properties.as_ref()),
                ("resource", resource.properties.as_ref()),
                ("action", action.properties.as_ref()),
            ],
        )?,
    })
}

fn decision(answer: Result<CheckAnswer, ServiceError>) -> EvaluationResponse {
    match answer {
        Ok(CheckAnswer { outcome, .. }) => match outcome {
            CheckOutcome::Has => EvaluationResponse {
                decision: true,
                context: None,
            },
            CheckOutcome::No => EvaluationResponse {
                decision: false,
                context: None,
            },
            CheckOutcome::Conditional { missing } => EvaluationResponse {
                decision: false,
                context: Some(object(
                    json!({"conditional": true, "missing_context": missing}),
                )),
            },
        },
        Err(e) => EvaluationResponse {
            decision: false,
            context: Some(object(json!({"error": {
                "status": error::status_of(&e).as_u16(),
                "code": crate::api::error::code(e.kind) as i32,
                "message": super::json::bounded(&e.message, error::MAX_ERROR_MESSAGE_BYTES),
                "reason": e.reason.map(|r| r.name()),
            }}))),
        },
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn is_deny(answer: &Result<CheckAnswer, ServiceError>) -> bool {
    !matches!(
        answer,
        Ok(CheckAnswer {
            outcome: CheckOutcome::Has,
            ..
        })
    )
}

fn is_permit(answer: &Result<CheckAnswer, ServiceError>) -> bool {
    !is_deny(answer)
}

/// Page size and token of a search.
fn page(backend: &Backend, page: Option<&PageRequest>) -> (usize, Option<PageToken>) {
    let max = backend.tessera.config().max_read_page;
    let limit = page
        .and_then(|p| p.limit)
        .filter(|l| *l > 0)
        .map_or(max, |l| (l as usize).min(max));
    let token = page
        .and_then(|p| p.token.clone())
        .filter(|t| !t.is_empty())
        .map(|token| PageToken {
            field: "page.token",
            token,
        });
    (limit, token)
}

// ---- endpoints ----------------------------------------------------------------------------

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    backend: &Backend,
    caller: Caller,
    req: EvaluationRequest,
) -> Result<EvaluationResponse, ServiceError> {
    let item = check_item(
        "",
        Some(&req.subject),
        Some(&req.action),
        Some(&req.resource),
        req.context.as_ref(),
    )?;
    let result = backend
        .execute(
            caller,
            service::Check {
                consistency: Consistency::FullyConsistent,
                item,
                with_tracing: false,
            },
        )
        .await?;
    Ok(decision(Ok(result.answer)))
}

/// `POST /access/v1/evaluations`: the response, as JSON (a single decision when the request
/// has no `evaluations`).
pub async fn evaluations(
    backend: &Backend,
    caller: Caller,
    req: EvaluationsRequest,
) -> Result<Value, ServiceError> {
    let items = req.evaluations.clone().unwrap_or_default();
    if items.is_empty() {
        let single = EvaluationRequest {
            subject: req
                .subject
                .ok_or_else(|| invalid("subject", "is required"))?,
            action: req.action.ok_or_else(|| invalid("action", "is required"))?,
            resource: req
                .resource
                .ok_or_else(|| invalid("resource", "is required"))?,
            context: req.context,
        };
        return to_json(&evaluation(backend, caller, single).await?);
    }
    let semantic = req
        .options
        .as_ref()
        .and_then(|o| o.evaluations_semantic)
        .unwrap_or_default();
    let checks = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            check_item(
                &format!("evaluations[{i}]."),
                item.subject.as_ref().or(req.subject.as_ref()),
                item.action.as_ref().or(req.action.as_ref()),
                item.resource.as_ref().or(req.resource.as_ref()),
                item.context.as_ref().or(req.context.as_ref()),
            )
        })
        .collect();
    let result = backend
        .execute(
            caller,
            service::CheckBulk {
                consistency: Consistency::FullyConsistent,
                items: checks,
                with_tracing: false,
                stop_after: match semantic {
                    EvaluationsSemantic::ExecuteAll => None,
                    EvaluationsSemantic::DenyOnFirstDeny => Some(is_deny),
                    EvaluationsSemantic::PermitOnFirstPermit => Some(is_permit),
                },
            },
        )
        .await
        .map_err(|e| match e.reason {
            // The service names the limit after CheckBulkPermissions' field.
            Some(service::ErrorReason::TooManyChecksInRequest) => {
                let message = e.message.replacen("items:", "evaluations:", 1);
                e.with_message(message)
            }
            _ => e,
        })?;
    to_json(&EvaluationsResponse {
        evaluations: result.answers.into_iter().map(decision).collect(),
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, ServiceError> {
    serde_json::to_value(v).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("cannot write the response: {e}"),
        )
    })
}

fn page_response(count: usize, next: Option<String>) -> PageResponse {
    PageResponse {
        next_token: next.unwrap_or_default(),
        count,
    }
}

/// `POST /access/v1/search/subject`.
pub async fn search_subject(
    backend: &Backend,
    caller: Caller,
    req: SubjectSearchRequest,
) -> Result<SubjectSearchResponse, ServiceError> {
    let subject_type = object_type("subject.type", &req.subject.kind)?;
    let (limit, cursor) = page(backend, req.page.as_ref());
    let request = service::LookupSubjects {
        consistency: Consistency::FullyConsistent,
        resource: resource_ref("resource", &req.resource)?,
        permission: permission("action", &req.action)?,
        subject_type: subject_type.clone(),
        subject_relation: None,
        context: caveat_context(
            req.context.as_ref(),
            [
                ("subject", req.subject.properties.as_ref()),
                ("resource", req.resource.properties.as_ref()),
                ("action", req.action.properties.as_ref()),
            ],
        )?,
        concrete_limit: Some(limit),
        include_wildcards: true,
        cursor,
    };
    let found = backend.execute(caller, request).await?;
    let next = if found.more {
        found.items.last().map(|(_, c)| c.clone())
    } else {
        None
    };
    let results: Vec<Subject> = found
        .items
        .into_iter()
        .filter(|(s, _)| s.outcome == CheckOutcome::Has)
        .map(|(s, _)| {
            let excluded: Vec<Value> = s
                .excluded
                .iter()
                .filter(|e| e.outcome == CheckOutcome::Has)
                .map(|e| Value::String(ids::display_id(&e.subject_id)))
                .collect();
            Subject {
                kind: subject_type.clone(),
                id: Some(if s.subject_id == WILDCARD_ID {
                    WILDCARD_ID.to_string()
                } else {
                    ids::display_id(&s.subject_id)
                }),
                properties: (!excluded.is_empty()).then(|| object(json!({"excluded": excluded}))),
            }
        })
        .collect();
    Ok(SubjectSearchResponse {
        page: page_response(results.len(), next),
        results,
    })
}

/// `POST /access/v1/search/resource`.
pub async fn search_resource(
    backend: &Backend,
    caller: Caller,
    req: ResourceSearchRequest,
) -> Result<ResourceSearchResponse, ServiceError> {
    let resource_type = object_type("resource.type", &req.resource.kind)?;
    let (limit, cursor) = page(backend, req.page.as_ref());
    let request = service::LookupResources {
        consistency: Consistency::FullyConsistent,
        resource_type: resource_type.clone(),
        permission: permission("action", &req.action)?,
        subject: subject_ref("subject", &req.subject)?,
        context: caveat_context(
            req.context.as_ref(),
            [
                ("subject", req.subject.properties.as_ref()),
                ("resource", req.resource.properties.as_ref()),
                ("action", req.action.properties.as_ref()),
            ],
        )?,
        limit: Some(limit),
        cursor,
    };
    let pages = backend.execute(caller, request).await?;
    let found = backend.blocking(move |b| pages.collect(&b.tessera)).await?;
    let next = if found.more {
        found.items.last().map(|(_, c)| c.clone())
    } else {
        None
    };
    let results: Vec<Resource> = found
        .items
        .into_iter()
        .filter(|(r, _)| r.outcome == CheckOutcome::Has)
        .map(|(r, _)| Resource {
            kind: resource_type.clone(),
            id: Some(ids::display_id(&r.resource_id)),
            properties: None,
        })
        .collect();
    Ok(ResourceSearchResponse {
        page: page_response(results.len(), next),
        results,
    })
}

/// `POST /access/v1/search/action`.
pub async fn search_action(
    backend: &Backend,
    caller: Caller,
    req: ActionSearchRequest,
) -> Result<ActionSearchResponse, ServiceError> {
    let (limit, cursor) = page(backend, req.page.as_ref());
    let request = service::ActionSearch {
        consistency: Consistency::FullyConsistent,
        resource: resource_ref("resource", &req.resource)?,
        subject: subject_ref("subject", &req.subject)?,
        context: caveat_context(
            req.context.as_ref(),
            [
                ("subject", req.subject.properties.as_ref()),
                ("resource", req.resource.properties.as_ref()),
                ("action", None),
            ],
        )?,
        limit: Some(limit),
        cursor,
    };
    let found = backend.execute(caller, request).await?;
    let results: Vec<Action> = found
        .actions
        .into_iter()
        .map(|name| Action {
            name,
            properties: None,
        })
        .collect();
    Ok(ActionSearchResponse {
        page: page_response(results.len(), found.next),
        results,
    })
}

/// The metadata document, with endpoint URLs on the host the client used.
pub fn metadata(headers: &HeaderMap) -> PdpMetadata {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', ' ', '"', '\\']))
        .unwrap_or("localhost");
    let base = format!("http://{host}");
    let url = |path: &str| format!("{base}{path}");
    PdpMetadata {
        policy_decision_point: base.clone(),
        access_evaluation_endpoint: url("/access/v1/evaluation"),
        access_evaluations_endpoint: url("/access/v1/evaluations"),
        search_subject_endpoint: url("/access/v1/search/subject"),
        search_resource_endpoint: url("/access/v1/search/resource"),
        search_action_endpoint: url("/access/v1/search/action"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_become_prefixed_caveat_context() {
        let item = check_item(
            "",
            Some(&Subject {
                kind: "user".into(),
                id: Some("alice@example.com".into()),
                properties: Some(object(json!({"role": "admin"}))),
            }),
            Some(&Action {
                name: "can_read".into(),
                properties: None,
            }),
            Some(&Resource {
                kind: "todo".into(),
                id: Some("1".into()),
                properties: Some(object(json!({"owner": "bob"}))),
            }),
            Some(&object(json!({"ip": "10.0.0.1"}))),
        )
        .unwrap();
        assert_eq!(item.subject.object.object_id, "alice=40example=2Ecom");
        assert_eq!(
            Value::Object(item.context),
            json!({"ip": "10.0.0.1", "subject_role": "admin", "resource_owner": "bob"})
        );
        let err = caveat_context(
            Some(&object(json!({"subject_role": "x"}))),
            [
                ("subject", Some(&object(json!({"role": "y"})))),
                ("resource", None),
                ("action", None),
            ],
        )
        .unwrap_err();
        assert!(
            err.message.starts_with("subject.properties.role: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_parts_name_their_field() {
        let err = check_item("evaluations[1].", None, None, None, None).unwrap_err();
        assert_eq!(err.message, "evaluations[1].subject: is required");
        let err = object_id("resource.id", Some(&"@".repeat(400))).unwrap_err();
        assert!(
            err.message.starts_with("resource.id: is 1200 bytes"),
            "{}",
            err.message
        );
    }

    #[test]
    fn conditional_answers_are_denials_with_the_missing_context() {
        let d = decision(Ok(CheckAnswer {
            outcome: CheckOutcome::Conditional {
                missing: vec!["ip".into()],
            },
            trace: None,
        }));
        assert!(!d.decision);
        assert_eq!(
            Value::Object(d.context.unwrap()),
            json!({"conditional": true, "missing_context": ["ip"]})
        );
    }
}
