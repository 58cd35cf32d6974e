//! `tessera check RESOURCE PERMISSION SUBJECT`: one permission check.
//!
//! Prints `true`, `false` or `caveated (missing context: a, b)` on stdout and the
//! `checked_at` zookie on stderr. Exit code: 0 true, 1 false (or an error), 3 caveated.

use clap::Args;

use crate::api::proto::authzed::api::v1 as pb;
use crate::model::{Context, ObjectRef, parse_subject};
use pb::check_permission_response::Permissionship;

use super::client::{ClientArgs, Connection, ConsistencyArgs, block_on};
use super::error::{CliError, EXIT_CAVEATED, EXIT_FAILURE, EXIT_OK};
use super::wire;

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The resource, `type:id` (e.g. `document:readme`).
    #[arg(value_name = "RESOURCE")]
    pub resource: String,
    /// The permission or relation to check (e.g. `view`).
    #[arg(value_name = "PERMISSION")]
    pub permission: String,
    /// The subject, `type:id` or `type:id#relation` (e.g. `user:alice`).
    #[arg(value_name = "SUBJECT")]
    pub subject: String,
    /// Caveat context as a JSON object (e.g. `{"ip": "10.0.0.1"}`).
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses `type:id` (no relation, no wildcard) for a resource argument.
pub(crate) fn parse_resource(text: &str) -> Result<ObjectRef, CliError> {
    let usage = |reason: String| CliError::Usage(format!("invalid resource `{text}`: {reason}"));
    let subject = parse_subject(text).map_err(|e| usage(e.to_string()))?;
    if subject.relation.is_some() {
        return Err(usage("expected `type:id` without a `#relation`".into()));
    }
    if subject.is_wildcard() {
        return Err(usage("a resource cannot be the wildcard `*`".into()));
    }
    Ok(subject.object)
}

/// Parses a `--context` JSON object.
pub(crate) fn parse_context(text: &str) -> Result<Context, CliError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(CliError::Usage(format!(
            "--context `{text}` must be a JSON object"
        ))),
        Err(e) => Err(CliError::Usage(format!(
            "--context `{text}` is not valid JSON: {e}"
        ))),
    }
}

/// Runs `tessera check`; returns the exit code.
pub fn run(args: &CheckArgs) -> Result<u8, CliError> {
    let resource = parse_resource(&args.resource)?;
    let subject = parse_subject(&args.subject)
        .map_err(|e| CliError::Usage(format!("invalid subject `{}`: {e}", args.subject)))?;
    let context = args.context.as_deref().map(parse_context).transpose()?;
    let request = pb::CheckPermissionRequest {
        consistency: Some(args.consistency.to_proto()?),
        resource: Some(wire::object_to_proto(&resource)),
        permission: args.permission.clone(),
        subject: Some(wire::subject_to_proto(&subject)),
        context: context.as_ref().map(wire::context_to_struct),
        with_tracing: false,
    };
    block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        let response = conn
            .permissions
            .check_permission(request)
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        let checked_at = response.checked_at.map(|z| z.token).unwrap_or_default();
        let code = match Permissionship::try_from(response.permissionship) {
            Ok(Permissionship::HasPermission) => {
                println!("true");
                EXIT_OK
            }
            Ok(Permissionship::NoPermission) => {
                println!("false");
                EXIT_FAILURE
            }
            Ok(Permissionship::ConditionalPermission) => {
                let missing = response
                    .partial_caveat_info
                    .map(|p| p.missing_required_context)
                    .unwrap_or_default();
                if missing.is_empty() {
                    println!("caveated");
                } else {
                    println!("caveated (missing context: {})", missing.join(", "));
                }
                EXIT_CAVEATED
            }
            Ok(Permissionship::Unspecified) | Err(_) => {
                return Err(CliError::Failed(format!(
                    "the server answered with an unknown permissionship ({})",
                    response.permissionship
                )));
            }
        };
        eprintln!("checked at zookie {checked_at}");
        Ok(code)
    })
}
