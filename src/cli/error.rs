//! The one error type of the CLI, and how it becomes a message and an exit code.

use std::process::ExitCode;

/// Exit code of a successful command (and of `check` answering true).
pub const EXIT_OK: u8 = 0;
/// Exit code of a failed command (and of `check` answering false).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error: bad arguments, flags or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `check` when the answer depends on caveat context that was not given.
pub const EXIT_CAVEATED: u8 = 3;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, flags or configuration (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached at all.
    #[error("cannot connect to {endpoint}: is `tessera serve` running? ({reason})")]
    Connect { endpoint: String, reason: String },
    /// The server answered with an error status.
    #[error("the server returned {code}: {message}{hint}")]
    Status {
        code: &'static str,
        message: String,
        hint: &'static str,
    },
    /// A local file or stream could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Any other failure, with its message.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// Prints the error of a failed subcommand to stderr and returns the exit code to use.
pub fn finish(result: Result<u8, CliError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
