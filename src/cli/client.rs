//! The gRPC connection shared by the client subcommands: endpoint, bearer token, consistency
//! flags, and turning transport failures and error statuses into [`CliError`]s.

use std::future::Future;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::api::proto::authzed::api::v1 as pb;
use crate::api::proto::tessera::admin::v1::access_service_client::AccessServiceClient;
use crate::auth::Secret;
use pb::permissions_service_client::PermissionsServiceClient;
use pb::schema_service_client::SchemaServiceClient;
use tonic_health::pb::health_client::HealthClient;

use super::config::parse_duration;
use super::error::CliError;

/// Where the client subcommands connect by default (the default of `serve --grpc-addr`).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

/// Connection flags shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's gRPC endpoint (plaintext HTTP/2; `http://` is assumed when no scheme is given).
    #[arg(
        long,
        env = "TESSERA_ENDPOINT",
        default_value = DEFAULT_ENDPOINT,
        value_name = "URL"
    )]
    pub endpoint: String,

    /// Bearer token sent as `authorization: bearer TOKEN`: a preshared key or a JWT.
    #[arg(
        long,
        env = "TESSERA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<Secret>,

    /// How long to wait for the connection to the server.
    #[arg(
        long,
        env = "TESSERA_CONNECT_TIMEOUT",
        default_value = "5s",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub connect_timeout: Duration,
}

/// Adds the bearer token to every request.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// An open connection to a server, with one client per service.
pub struct Connection {
    pub endpoint: String,
    pub permissions: PermissionsServiceClient<Svc>,
    pub schema: SchemaServiceClient<Svc>,
    /// Tessera's admin service (`tessera access …`).
    pub access: AccessServiceClient<Svc>,
    /// The standard `grpc.health.v1` service on the same channel (`bench noop`).
    pub health: HealthClient<Svc>,
}

impl Connection {
    /// Opens the connection, failing with a clear message when the server is unreachable.
    pub async fn open(args: &ClientArgs) -> Result<Connection, CliError> {
        let endpoint = normalize_endpoint(&args.endpoint)?;
        let bearer = match &args.token {
            None => Bearer(None),
            Some(token) => {
                let token = token.expose().trim();
                if token.is_empty() {
                    return Err(CliError::Usage("--token is empty".into()));
                }
                let value: MetadataValue<Ascii> =
                    format!("bearer {token}").parse().map_err(|_| {
                        CliError::Usage(
                            "--token contains characters that cannot be sent in a gRPC header"
                                .into(),
                        )
                    })?;
                Bearer(Some(value))
            }
        };
        let channel = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| CliError::Usage(format!("invalid --endpoint `{endpoint}`: {e}")))?
            .connect_timeout(args.connect_timeout)
            .connect()
            .await
            .map_err(|e| CliError::Connect {
                endpoint: endpoint.clone(),
                reason: root_cause(&e),
            })?;
        Ok(Connection {
            permissions: PermissionsServiceClient::with_interceptor(
                channel.clone(),
                bearer.clone(),
            )
            .max_decoding_message_size(64 << 20),
            schema: SchemaServiceClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(64 << 20),
            access: AccessServiceClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(64 << 20),
            health: HealthClient::with_interceptor(channel, bearer),
            endpoint,
        })
    }

    /// Turns an error status of a call into a [`CliError`].
    pub fn error(&self, status: tonic::Status) -> CliError {
        status_error(&self.endpoint, status)
    }
}

/// Accepts `host:port` as well as a URL; refuses TLS, which this build does not speak.
fn normalize_endpoint(raw: &str) -> Result<String, CliError> {
    let raw = raw.trim().trim_end_matches('/');
    if raw.is_empty() {
        return Err(CliError::Usage("--endpoint is empty".into()));
    }
    if raw.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "--endpoint `{raw}`: TLS is not supported by this client; use an `http://` endpoint \
             (terminate TLS in a proxy in front of the server)"
        )));
    }
    if raw.starts_with("http://") {
        Ok(raw.to_string())
    } else if raw.contains("://") {
        Err(CliError::Usage(format!(
            "--endpoint `{raw}`: expected `http://HOST:PORT` or `HOST:PORT`"
        )))
    } else {
        Ok(format!("http://{raw}"))
    }
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The canonical upper-case name of a gRPC status code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Turns an error status into a [`CliError`]; a transport failure (the server went away
/// mid-call) reads as a connection error.
pub fn status_error(endpoint: &str, status: tonic::Status) -> CliError {
    use std::error::Error as _;
    if status.code() == tonic::Code::Unavailable && status.source().is_some() {
        return CliError::Connect {
            endpoint: endpoint.to_string(),
            reason: root_cause(&status),
        };
    }
    let hint = match status.code() {
        tonic::Code::Unauthenticated => " (pass a token with --token or TESSERA_TOKEN)",
        _ => "",
    };
    CliError::Status {
        code: code_name(status.code()),
        message: status.message().to_string(),
        hint,
    }
}

/// Runs a client subcommand's future on a small single-threaded runtime.
pub fn block_on<F, T>(future: F) -> Result<T, CliError>
where
    F: Future<Output = Result<T, CliError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    runtime.block_on(future)
}

/// Consistency modes a read may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsistencyMode {
    /// The newest data (the CLI's default: you see your own writes).
    FullyConsistent,
    /// A recent snapshot the server may answer fastest from.
    MinimizeLatency,
    /// A snapshot at least as fresh as `--zookie`.
    AtLeastAsFresh,
    /// Exactly the snapshot of `--zookie`.
    AtExactSnapshot,
}

/// `--consistency` / `--zookie` of the read subcommands.
#[derive(Debug, Clone, Args)]
pub struct ConsistencyArgs {
    /// Which snapshot to read [default: at-least-as-fresh with --zookie, else fully-consistent].
    #[arg(long, value_enum, value_name = "MODE")]
    pub consistency: Option<ConsistencyMode>,

    /// A zookie returned by an earlier write or read.
    #[arg(long, value_name = "ZOOKIE")]
    pub zookie: Option<String>,
}

impl ConsistencyArgs {
    /// The wire consistency requirement these flags ask for.
    pub fn to_proto(&self) -> Result<pb::Consistency, CliError> {
        use pb::consistency::Requirement;
        let token = |t: &String| pb::ZedToken { token: t.clone() };
        let requirement = match (self.consistency, &self.zookie) {
            (None, None) | (Some(ConsistencyMode::FullyConsistent), None) => {
                Requirement::FullyConsistent(true)
            }
            (Some(ConsistencyMode::MinimizeLatency), None) => Requirement::MinimizeLatency(true),
            (None, Some(z)) | (Some(ConsistencyMode::AtLeastAsFresh), Some(z)) => {
                Requirement::AtLeastAsFresh(token(z))
            }
            (Some(ConsistencyMode::AtExactSnapshot), Some(z)) => {
                Requirement::AtExactSnapshot(token(z))
            }
            (
                Some(mode @ (ConsistencyMode::AtLeastAsFresh | ConsistencyMode::AtExactSnapshot)),
                None,
            ) => {
                return Err(CliError::Usage(format!(
                    "--consistency {} needs --zookie",
                    mode_name(mode)
                )));
            }
            (Some(mode), Some(_)) => {
                return Err(CliError::Usage(format!(
                    "--zookie cannot be combined with --consistency {}",
                    mode_name(mode)
                )));
            }
        };
        Ok(pb::Consistency {
            requirement: Some(requirement),
        })
    }
}

fn mode_name(mode: ConsistencyMode) -> &'static str {
    match mode {
        ConsistencyMode::FullyConsistent => "fully-consistent",
        ConsistencyMode::MinimizeLatency => "minimize-latency",
        ConsistencyMode::AtLeastAsFresh => "at-least-as-fresh",
        ConsistencyMode::AtExactSnapshot => "at-exact-snapshot",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:50051").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert_eq!(normalize_endpoint("http://h:1/").unwrap(), "http://h:1");
        assert!(matches!(
            normalize_endpoint("https://h:1"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            normalize_endpoint("ftp://h:1"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(normalize_endpoint(" "), Err(CliError::Usage(_))));
    }

    #[test]
    fn consistency_flags() {
        use pb::consistency::Requirement;
        let args = |c, z: Option<&str>| ConsistencyArgs {
            consistency: c,
            zookie: z.map(str::to_string),
        };
        let req = |a: ConsistencyArgs| a.to_proto().map(|c| c.requirement);
        assert_eq!(
            req(args(None, None)).unwrap(),
            Some(Requirement::FullyConsistent(true))
        );
        assert_eq!(
            req(args(None, Some("z"))).unwrap(),
            Some(Requirement::AtLeastAsFresh(pb::ZedToken {
                token: "z".into()
            }))
        );
        assert_eq!(
            req(args(Some(ConsistencyMode::AtExactSnapshot), Some("z"))).unwrap(),
            Some(Requirement::AtExactSnapshot(pb::ZedToken {
                token: "z".into()
            }))
        );
        assert_eq!(
            req(args(Some(ConsistencyMode::MinimizeLatency), None)).unwrap(),
            Some(Requirement::MinimizeLatency(true))
        );
        assert!(req(args(Some(ConsistencyMode::AtExactSnapshot), None)).is_err());
        assert!(req(args(Some(ConsistencyMode::FullyConsistent), Some("z"))).is_err());
    }
}
