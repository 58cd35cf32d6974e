//! What an operator configures: preshared keys, JWT key sources and claim checks, or the
//! insecure mode. Secrets are wrapped in [`Secret`] so they never reach `Debug` output or logs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use zeroize::Zeroizing;

pub use jsonwebtoken::Algorithm as JwtAlgorithm;

/// The default allowance for clock skew when checking `exp` and `nbf`.
pub const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest accepted leeway: beyond this, expiry would barely mean anything.
pub const MAX_JWT_LEEWAY: Duration = Duration::from_secs(3600);

/// The shortest accepted HMAC secret, in bytes (RFC 7518 asks for at least the hash size).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// A secret string (a preshared key or an HMAC secret). Its `Debug` output is redacted and
/// its memory is wiped when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself. Callers must not log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

/// Lets command-line parsers build a `Secret` directly from an argument.
impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// Where JWT verification keys come from.
///
/// `algorithms` restricts which `alg` values a key accepts; empty means every algorithm
/// that fits the key (HS256/384/512 for a secret, RS*/PS* for RSA, the curve's ES* for EC,
/// EdDSA for Ed25519). `kid`, when set, is matched against the token header's `kid`.
#[derive(Debug, Clone)]
pub enum JwtKeySource {
    /// An HMAC secret given directly (at least [`MIN_HMAC_SECRET_LEN`] bytes).
    HmacSecret {
        secret: Secret,
        kid: Option<String>,
        algorithms: Vec<JwtAlgorithm>,
    },
    /// An HMAC secret read from a file (one trailing line break is ignored).
    HmacSecretFile {
        path: PathBuf,
        kid: Option<String>,
        algorithms: Vec<JwtAlgorithm>,
    },
    /// A PEM public key file: RSA (`PUBLIC KEY` or `RSA PUBLIC KEY`), EC P-256/P-384 or Ed25519.
    PublicKeyFile {
        path: PathBuf,
        kid: Option<String>,
        algorithms: Vec<JwtAlgorithm>,
    },
    /// A JSON Web Key Set file; a token's `kid` selects the key. Keys marked for encryption
    /// (`"use": "enc"`) and key types that cannot verify signatures are skipped.
    JwksFile { path: PathBuf },
}

impl JwtKeySource {
    /// An HMAC secret accepting HS256, HS384 and HS512.
    pub fn hmac_secret(secret: impl Into<Secret>) -> Self {
        JwtKeySource::HmacSecret {
            secret: secret.into(),
            kid: None,
            algorithms: Vec::new(),
        }
    }

    /// An HMAC secret stored in a file.
    pub fn hmac_secret_file(path: impl Into<PathBuf>) -> Self {
        JwtKeySource::HmacSecretFile {
            path: path.into(),
            kid: None,
            algorithms: Vec::new(),
        }
    }

    /// A PEM public key file accepting every algorithm that fits the key.
    pub fn public_key_file(path: impl Into<PathBuf>) -> Self {
        JwtKeySource::PublicKeyFile {
            path: path.into(),
            kid: None,
            algorithms: Vec::new(),
        }
    }

    /// A JWKS file.
    pub fn jwks_file(path: impl Into<PathBuf>) -> Self {
        JwtKeySource::JwksFile { path: path.into() }
    }

    /// Sets the key id (ignored for JWKS files, whose keys carry their own).
    pub fn with_kid(mut self, key_id: impl Into<String>) -> Self {
        match &mut self {
            JwtKeySource::HmacSecret { kid, .. }
            | JwtKeySource::HmacSecretFile { kid, .. }
            | JwtKeySource::PublicKeyFile { kid, .. } => *kid = Some(key_id.into()),
            JwtKeySource::JwksFile { .. } => {}
        }
        self
    }

    /// Restricts the accepted algorithms (ignored for JWKS files, whose keys say their own).
    pub fn with_algorithms(mut self, algs: impl IntoIterator<Item = JwtAlgorithm>) -> Self {
        match &mut self {
            JwtKeySource::HmacSecret { algorithms, .. }
            | JwtKeySource::HmacSecretFile { algorithms, .. }
            | JwtKeySource::PublicKeyFile { algorithms, .. } => {
                *algorithms = algs.into_iter().collect()
            }
            JwtKeySource::JwksFile { .. } => {}
        }
        self
    }
}

/// Everything [`Auth::from_config`](super::Auth::from_config) needs.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Preshared keys (`--grpc-preshared-key`); callers presenting one are administrators.
    pub preshared_keys: Vec<Secret>,
    /// JWT verification keys.
    pub jwt_keys: Vec<JwtKeySource>,
    /// Accepted `iss` values; when non-empty, tokens must carry one of them.
    pub jwt_issuers: Vec<String>,
    /// Accepted `aud` values; when non-empty, tokens must carry one of them. When empty,
    /// tokens that name an audience are refused (they were meant for someone else).
    pub jwt_audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (whole seconds; at most [`MAX_JWT_LEEWAY`]).
    pub jwt_leeway: Duration,
    /// Accept every call as an anonymous administrator (`--insecure-no-auth`).
    pub insecure: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            preshared_keys: Vec::new(),
            jwt_keys: Vec::new(),
            jwt_issuers: Vec::new(),
            jwt_audiences: Vec::new(),
            jwt_leeway: DEFAULT_JWT_LEEWAY,
            insecure: false,
        }
    }
}

/// Why an [`AuthConfig`] cannot be used. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "no preshared key and no JWT key is configured: configure `--grpc-preshared-key` or a JWT key, or pass `--insecure-no-auth` to accept every call unauthenticated"
    )]
    NoCredentials,
    #[error(
        "`--insecure-no-auth` cannot be combined with preshared keys or JWT keys: remove one or the other"
    )]
    InsecureWithCredentials,
    #[error("preshared key #{index} is {reason}")]
    BadPresharedKey { index: usize, reason: &'static str },
    #[error("cannot read JWT key file `{path}`: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("invalid JWT key in {origin}: {reason}")]
    InvalidKey { origin: String, reason: String },
    #[error("algorithm `{algorithm:?}` cannot be used with {origin} ({family})")]
    AlgorithmMismatch {
        origin: String,
        algorithm: JwtAlgorithm,
        family: String,
    },
    #[error("the JWKS file `{path}` contains no key usable to verify signatures")]
    EmptyJwks { path: String },
    #[error("the JWT leeway of {seconds}s exceeds the maximum of {max}s")]
    LeewayTooLarge { seconds: u64, max: u64 },
    #[error("invalid JWT {what}: {reason}")]
    InvalidSetting { what: &'static str, reason: String },
}
