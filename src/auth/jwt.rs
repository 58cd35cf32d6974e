//! JWT verification: keys loaded once from the configuration, then each token's header picks
//! the candidate keys (by `kid`, then by algorithm) before `jsonwebtoken` checks the signature
//! and the registered claims.
//!
//! Every rejection message describes the problem without repeating the token.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;

use super::config::{
    AuthConfig, AuthConfigError, JwtKeySource, MAX_JWT_LEEWAY, MIN_HMAC_SECRET_LEN,
};

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Longest `sub` accepted as a caller identity, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;

/// One verification key with the algorithms it may be used with.
struct VerifyKey {
    /// Where the key came from, for messages (a file path, or `HMAC secret #n`).
    origin: String,
    kid: Option<String>,
    family: AlgorithmFamily,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
    /// Claim checks, with `algorithms` as the allowed set (all of one family, as
    /// `jsonwebtoken` requires).
    validation: Validation,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("origin", &self.origin)
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Verifies JWTs against the configured keys and claim rules.
#[derive(Debug)]
pub(crate) struct JwtVerifier {
    keys: Vec<VerifyKey>,
    /// Whether accepted audiences are configured (tokens naming one are refused otherwise).
    audience_configured: bool,
}

/// A key before its claim rules are attached.
struct LoadedKey {
    origin: String,
    kid: Option<String>,
    family: AlgorithmFamily,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "an HMAC secret",
        AlgorithmFamily::Rsa => "an RSA public key",
        AlgorithmFamily::Ec => "an EC public key",
        AlgorithmFamily::Ed => "an Ed25519 public key",
    }
}

impl JwtVerifier {
    /// Loads every key source of `config`; `None` when no JWT key is configured.
    pub(crate) fn from_config(config: &AuthConfig) -> Result<Option<JwtVerifier>, AuthConfigError> {
        if config.jwt_keys.is_empty() {
            if !config.jwt_issuers.is_empty() || !config.jwt_audiences.is_empty() {
                return Err(AuthConfigError::InvalidSetting {
                    what: "settings",
                    reason:
                        "an issuer or audience is configured but no JWT key to verify tokens with"
                            .into(),
                });
            }
            return Ok(None);
        }
        if config.jwt_leeway > MAX_JWT_LEEWAY {
            return Err(AuthConfigError::LeewayTooLarge {
                seconds: config.jwt_leeway.as_secs(),
                max: MAX_JWT_LEEWAY.as_secs(),
            });
        }
        for (what, values) in [
            ("issuer", &config.jwt_issuers),
            ("audience", &config.jwt_audiences),
        ] {
            if values.iter().any(|v| v.trim().is_empty()) {
                return Err(AuthConfigError::InvalidSetting {
                    what,
                    reason: "must not be empty".into(),
                });
            }
        }

        let mut loaded = Vec::new();
        let mut secret_no = 0;
        for source in &config.jwt_keys {
            match source {
                JwtKeySource::HmacSecret {
                    secret,
                    kid,
                    algorithms,
                } => {
                    secret_no += 1;
                    let origin = format!("HMAC secret #{secret_no}");
                    loaded.push(hmac_key(
                        origin,
                        secret.expose().as_bytes(),
                        kid,
                        algorithms,
                    )?);
                }
                JwtKeySource::HmacSecretFile {
                    path,
                    kid,
                    algorithms,
                } => {
                    let text = zeroize::Zeroizing::new(read_key_file(path)?);
                    let text = text.strip_suffix('\n').unwrap_or(text.as_str());
                    let text = text.strip_suffix('\r').unwrap_or(text);
                    let secret = zeroize::Zeroizing::new(text.as_bytes().to_vec());
                    loaded.push(hmac_key(file_origin(path), &secret, kid, algorithms)?);
                }
                JwtKeySource::PublicKeyFile {
                    path,
                    kid,
                    algorithms,
                } => {
                    let text = read_key_file(path)?;
                    loaded.push(pem_key(path, &text, kid, algorithms)?);
                }
                JwtKeySource::JwksFile { path } => {
                    let text = read_key_file(path)?;
                    let keys = jwks_keys(path, &text)?;
                    if keys.is_empty() {
                        return Err(AuthConfigError::EmptyJwks {
                            path: path.display().to_string(),
                        });
                    }
                    loaded.extend(keys);
                }
            }
        }

        let leeway = config.jwt_leeway.as_secs();
        let keys = loaded
            .into_iter()
            .map(|k| {
                let mut validation = Validation::new(k.algorithms[0]);
                validation.algorithms = k.algorithms.clone();
                validation.leeway = leeway;
                validation.validate_exp = true;
                validation.validate_nbf = true;
                validation.validate_aud = true;
                let mut required = vec!["exp", "sub"];
                if !config.jwt_issuers.is_empty() {
                    validation.set_issuer(&config.jwt_issuers);
                    required.push("iss");
                }
                if !config.jwt_audiences.is_empty() {
                    validation.set_audience(&config.jwt_audiences);
                    required.push("aud");
                }
                validation.set_required_spec_claims(&required);
                VerifyKey {
                    origin: k.origin,
                    kid: k.kid,
                    family: k.family,
                    algorithms: k.algorithms,
                    key: k.key,
                    validation,
                }
            })
            .collect();
        Ok(Some(JwtVerifier {
            keys,
            audience_configured: !config.jwt_audiences.is_empty(),
        }))
    }

    /// Verifies `token` and returns its subject.
    pub(crate) fn verify(&self, token: &str) -> Result<String, String> {
        let header = parse_header(token)?;
        let alg = header.alg;

        // Select by `kid` first: a token naming a key is verified with that key only (or
        // with keys that carry no id, when none carries this one).
        let by_kid: Vec<&VerifyKey> = match &header.kid {
            Some(kid) => {
                let named: Vec<&VerifyKey> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    let unnamed: Vec<&VerifyKey> =
                        self.keys.iter().filter(|k| k.kid.is_none()).collect();
                    if unnamed.is_empty() {
                        return Err(format!(
                            "the JWT names key id `{}`, which is not a configured key",
                            shorten(kid)
                        ));
                    }
                    unnamed
                } else {
                    named
                }
            }
            None => self.keys.iter().collect(),
        };
        let candidates: Vec<&VerifyKey> = by_kid
            .iter()
            .copied()
            .filter(|k| k.algorithms.contains(&alg))
            .collect();
        if candidates.is_empty() {
            let hint = if alg.family() == AlgorithmFamily::Hmac
                && by_kid.iter().any(|k| k.family != AlgorithmFamily::Hmac)
            {
                " (HMAC tokens are never verified with a public key)"
            } else {
                ""
            };
            return Err(match &header.kid {
                Some(kid) => format!(
                    "the JWT algorithm `{alg:?}` is not allowed for key `{}`{hint}",
                    shorten(kid)
                ),
                None => format!("no configured key accepts the JWT algorithm `{alg:?}`{hint}"),
            });
        }

        let mut last_error = None;
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &key.validation,
            ) {
                Ok(data) => return subject(&data.claims),
                // Another candidate may hold the right key; only a signature that verifies
                // makes the claim checks meaningful.
                Err(e)
                    if matches!(
                        e.kind(),
                        JwtErrorKind::InvalidSignature | JwtErrorKind::InvalidEcdsaKey
                    ) =>
                {
                    last_error.get_or_insert(e);
                }
                Err(e)
                    if matches!(e.kind(), JwtErrorKind::InvalidAudience)
                        && !self.audience_configured =>
                {
                    return Err(
                        "the JWT names an audience (`aud`) but this server accepts none; configure the accepted JWT audience"
                            .into(),
                    );
                }
                Err(e) => return Err(describe(e.kind())),
            }
        }
        Err(match last_error {
            Some(e) if !matches!(e.kind(), JwtErrorKind::InvalidSignature) => describe(e.kind()),
            _ => "the JWT signature does not verify with any configured key".into(),
        })
    }
}

/// The parts of a JWT header that select a key, parsed by hand so that `alg: none`, unknown
/// algorithms and critical extensions get precise messages.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

fn parse_header(token: &str) -> Result<TokenHeader, String> {
    let malformed = || {
        "the bearer token is not a well-formed JWT (expected three base64url parts separated by `.`)".to_string()
    };
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| malformed())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| "the JWT header is not a JSON object".to_string())?;
    let obj = value
        .as_object()
        .ok_or_else(|| "the JWT header is not a JSON object".to_string())?;
    let alg = match obj.get("alg") {
        Some(serde_json::Value::String(a)) => a.as_str(),
        Some(_) => return Err("the JWT header's `alg` is not a string".into()),
        None => return Err("the JWT header has no `alg`".into()),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err("unsigned JWTs (`alg: none`) are not accepted".into());
    }
    let alg: Algorithm = alg
        .parse()
        .map_err(|_| format!("the JWT algorithm `{}` is not supported", shorten(alg)))?;
    if let Some(crit) = obj.get("crit") {
        // RFC 7515 §4.1.11: a recipient must reject tokens with critical extensions it does
        // not understand, and Tessera understands none.
        let names = crit
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(shorten)
                    .collect::<Vec<_>>()
                    .join("`, `")
            })
            .unwrap_or_default();
        return Err(format!(
            "the JWT declares critical header extensions (`{names}`) that Tessera does not support"
        ));
    }
    let kid = match obj.get("kid") {
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(serde_json::Value::Null) | None => None,
        Some(_) => return Err("the JWT header's `kid` is not a string".into()),
    };
    Ok(TokenHeader { alg, kid })
}

/// The caller identity of verified claims: a non-empty string `sub` without control characters.
fn subject(claims: &serde_json::Map<String, serde_json::Value>) -> Result<String, String> {
    // RFC 7519 §4.1.1: `iss` is one StringOrURI. A list (which the JWT library would match
    // against the accepted issuers element by element) is not a valid issuer.
    if let Some(iss) = claims.get("iss")
        && !iss.is_string()
    {
        return Err("the JWT claim `iss` is not a single string (RFC 7519 §4.1.1)".into());
    }
    let sub = match claims.get("sub") {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err("the JWT claim `sub` is not a string".into()),
        None => return Err("the JWT has no `sub` claim (the caller identity)".into()),
    };
    if sub.trim().is_empty() {
        return Err("the JWT claim `sub` is empty".into());
    }
    if sub.len() > MAX_SUBJECT_LEN {
        return Err(format!(
            "the JWT claim `sub` is longer than {MAX_SUBJECT_LEN} bytes"
        ));
    }
    if sub.chars().any(char::is_control) {
        return Err("the JWT claim `sub` contains control characters".into());
    }
    Ok(sub.clone())
}

fn describe(kind: &JwtErrorKind) -> String {
    match kind {
        JwtErrorKind::ExpiredSignature => "the JWT has expired (`exp` is in the past)".into(),
        JwtErrorKind::ImmatureSignature => {
            "the JWT is not valid yet (`nbf` is in the future)".into()
        }
        JwtErrorKind::InvalidIssuer => "the JWT issuer (`iss`) is not an accepted issuer".into(),
        JwtErrorKind::InvalidAudience => {
            "the JWT audience (`aud`) is not an accepted audience".into()
        }
        JwtErrorKind::MissingRequiredClaim(c) => {
            format!("the JWT has no `{c}` claim, which is required")
        }
        JwtErrorKind::InvalidClaimFormat(c) => format!("the JWT claim `{c}` is malformed"),
        JwtErrorKind::InvalidSignature => {
            "the JWT signature does not verify with any configured key".into()
        }
        JwtErrorKind::InvalidAlgorithm => {
            "the JWT algorithm is not allowed for the selected key".into()
        }
        _ => "the bearer token is not a well-formed JWT".into(),
    }
}

/// Keeps attacker-chosen text in messages short.
fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.len() <= MAX {
        return clean;
    }
    let mut cut = MAX;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &clean[..cut])
}

// ---- key loading -------------------------------------------------------------------

fn file_origin(path: &Path) -> String {
    format!("`{}`", path.display())
}

fn read_key_file(path: &Path) -> Result<String, AuthConfigError> {
    std::fs::read_to_string(path).map_err(|e| AuthConfigError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The algorithms a key accepts: the configured ones (each checked against the key), or
/// every algorithm of its family that the key can verify.
fn key_algorithms(
    origin: &str,
    family: AlgorithmFamily,
    key: &DecodingKey,
    configured: &[Algorithm],
) -> Result<Vec<Algorithm>, AuthConfigError> {
    let fits = |alg: Algorithm| -> bool {
        // Constructing a verifier parses the key for this algorithm (an EC key only fits the
        // algorithm of its curve); a dummy verification then fails harmlessly.
        alg.family() == family && jsonwebtoken::crypto::verify("AA", b"probe", key, alg).is_ok()
    };
    if configured.is_empty() {
        let algs: Vec<Algorithm> = family
            .algorithms()
            .iter()
            .copied()
            .filter(|a| fits(*a))
            .collect();
        if algs.is_empty() {
            return Err(AuthConfigError::InvalidKey {
                origin: origin.to_string(),
                reason: format!(
                    "{} that no supported algorithm can use",
                    family_name(family)
                ),
            });
        }
        return Ok(algs);
    }
    let mut out = Vec::new();
    for &alg in configured {
        if !fits(alg) {
            return Err(AuthConfigError::AlgorithmMismatch {
                origin: origin.to_string(),
                algorithm: alg,
                family: family_name(family).trim_start_matches("an ").to_string(),
            });
        }
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

fn hmac_key(
    origin: String,
    secret: &[u8],
    kid: &Option<String>,
    algorithms: &[Algorithm],
) -> Result<LoadedKey, AuthConfigError> {
    if secret.len() < MIN_HMAC_SECRET_LEN {
        return Err(AuthConfigError::InvalidKey {
            origin,
            reason: format!(
                "an HMAC secret must be at least {MIN_HMAC_SECRET_LEN} bytes long (it has {})",
                secret.len()
            ),
        });
    }
    let key = DecodingKey::from_secret(secret);
    let algorithms = key_algorithms(&origin, AlgorithmFamily::Hmac, &key, algorithms)?;
    Ok(LoadedKey {
        origin,
        kid: kid.clone(),
        family: AlgorithmFamily::Hmac,
        algorithms,
        key,
    })
}

const RSA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const EC_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// True when the `AlgorithmIdentifier` at the start of a SubjectPublicKeyInfo holds `oid`.
fn spki_has_oid(der: &[u8], oid: &[u8]) -> bool {
    // The identifier precedes the key bits; looking only at the first bytes keeps key
    // material from ever matching by accident.
    let head = &der[..der.len().min(32)];
    head.windows(oid.len()).any(|w| w == oid)
}

fn pem_key(
    path: &Path,
    text: &str,
    kid: &Option<String>,
    algorithms: &[Algorithm],
) -> Result<LoadedKey, AuthConfigError> {
    let origin = file_origin(path);
    let invalid = |reason: String| AuthConfigError::InvalidKey {
        origin: origin.clone(),
        reason,
    };
    let block = pem::parse(text).map_err(|e| invalid(format!("not a PEM file ({e})")))?;
    let (family, key) = match block.tag() {
        "RSA PUBLIC KEY" => {
            let public = rsa::RsaPublicKey::from_pkcs1_der(block.contents())
                .map_err(|e| invalid(format!("not a valid RSA public key ({e})")))?;
            (
                AlgorithmFamily::Rsa,
                rsa_decoding_key(&public).map_err(invalid)?,
            )
        }
        "PUBLIC KEY" => {
            let der = block.contents();
            if spki_has_oid(der, RSA_OID) {
                let public = rsa::RsaPublicKey::from_public_key_der(der)
                    .map_err(|e| invalid(format!("not a valid RSA public key ({e})")))?;
                (
                    AlgorithmFamily::Rsa,
                    rsa_decoding_key(&public).map_err(invalid)?,
                )
            } else if spki_has_oid(der, EC_OID) {
                let key = DecodingKey::from_ec_pem(text.as_bytes())
                    .map_err(|e| invalid(format!("not a valid EC public key ({e})")))?;
                (AlgorithmFamily::Ec, key)
            } else if spki_has_oid(der, ED25519_OID) {
                let key = DecodingKey::from_ed_pem(text.as_bytes())
                    .map_err(|e| invalid(format!("not a valid Ed25519 public key ({e})")))?;
                if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
                    return Err(invalid("an Ed25519 public key must be 32 bytes".into()));
                }
                (AlgorithmFamily::Ed, key)
            } else {
                return Err(invalid(
                    "unsupported key type (expected RSA, EC P-256/P-384 or Ed25519)".into(),
                ));
            }
        }
        tag if tag.contains("PRIVATE KEY") => {
            return Err(invalid(
                "the file holds a private key; configure the public key instead (`openssl pkey -in KEY -pubout`)"
                    .into(),
            ));
        }
        "CERTIFICATE" => {
            return Err(invalid(
                "the file holds a certificate; configure its public key instead (`openssl x509 -in CERT -pubkey -noout`)"
                    .into(),
            ));
        }
        other => {
            return Err(invalid(format!(
                "unexpected PEM block `{other}` (expected `PUBLIC KEY`)"
            )));
        }
    };
    let algorithms = key_algorithms(&origin, family, &key, algorithms)?;
    Ok(LoadedKey {
        origin,
        kid: kid.clone(),
        family,
        algorithms,
        key,
    })
}

fn rsa_decoding_key(public: &rsa::RsaPublicKey) -> Result<DecodingKey, String> {
    let bits = public.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(DecodingKey::from_rsa_raw_components(
        &public.n().to_bytes_be(),
        &public.e().to_bytes_be(),
    ))
}

/// The signature-verification keys of a JWKS document.
fn jwks_keys(path: &Path, text: &str) -> Result<Vec<LoadedKey>, AuthConfigError> {
    let bad = |reason: String| AuthConfigError::InvalidKey {
        origin: file_origin(path),
        reason,
    };
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    let Some(entries) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Err(bad("a JWKS document needs a `keys` array".into()));
    };
    let mut out = Vec::new();
    let mut seen_kids = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let origin = match entry.get("kid").and_then(|k| k.as_str()) {
            Some(kid) => format!("`{}` (key `{kid}`)", path.display()),
            None => format!("`{}` (key #{i})", path.display()),
        };
        let invalid = |reason: String| AuthConfigError::InvalidKey {
            origin: origin.clone(),
            reason,
        };
        let jwk: Jwk = serde_json::from_value(entry.clone())
            .map_err(|e| invalid(format!("malformed JWK ({e})")))?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        // A key pinned to an algorithm Tessera cannot verify with (e.g. an encryption
        // algorithm) is not for us.
        let pinned: Vec<Algorithm> = match jwk.common.key_algorithm {
            Some(ka) => match Algorithm::try_from(ka) {
                Ok(a) => vec![a],
                Err(_) => continue,
            },
            None => Vec::new(),
        };
        let (family, key) = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let n = b64(&p.n).map_err(|r| invalid(format!("`n` {r}")))?;
                let e = b64(&p.e).map_err(|r| invalid(format!("`e` {r}")))?;
                let public = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                )
                .map_err(|e| invalid(format!("not a valid RSA public key ({e})")))?;
                (
                    AlgorithmFamily::Rsa,
                    rsa_decoding_key(&public).map_err(invalid)?,
                )
            }
            AlgorithmParameters::EllipticCurve(p) => {
                if !matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384) {
                    continue;
                }
                let key = DecodingKey::from_ec_components(&p.x, &p.y)
                    .map_err(|e| invalid(format!("not a valid EC public key ({e})")))?;
                (AlgorithmFamily::Ec, key)
            }
            AlgorithmParameters::OctetKeyPair(p) => {
                if p.curve != EllipticCurve::Ed25519 {
                    continue;
                }
                let x = b64(&p.x).map_err(|r| invalid(format!("`x` {r}")))?;
                if x.len() != 32 {
                    return Err(invalid("an Ed25519 public key must be 32 bytes".into()));
                }
                let key = DecodingKey::from_ed_components(&p.x)
                    .map_err(|e| invalid(format!("not a valid Ed25519 public key ({e})")))?;
                (AlgorithmFamily::Ed, key)
            }
            AlgorithmParameters::OctetKey(p) => {
                let secret = zeroize::Zeroizing::new(
                    b64(&p.value).map_err(|r| invalid(format!("`k` {r}")))?,
                );
                let loaded = hmac_key(origin.clone(), &secret, &jwk.common.key_id, &pinned)?;
                push_unique_kid(&mut seen_kids, &loaded, path)?;
                out.push(loaded);
                continue;
            }
            // Key types that cannot verify JWS signatures here.
            _ => continue,
        };
        let algorithms = key_algorithms(&origin, family, &key, &pinned)?;
        let loaded = LoadedKey {
            origin,
            kid: jwk.common.key_id.clone(),
            family,
            algorithms,
            key,
        };
        push_unique_kid(&mut seen_kids, &loaded, path)?;
        out.push(loaded);
    }
    Ok(out)
}

fn push_unique_kid(
    seen: &mut HashSet<String>,
    key: &LoadedKey,
    path: &Path,
) -> Result<(), AuthConfigError> {
    if let Some(kid) = &key.kid
        && !seen.insert(kid.clone())
    {
        return Err(AuthConfigError::InvalidKey {
            origin: file_origin(path),
            reason: format!("key id `{kid}` appears more than once"),
        });
    }
    Ok(())
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "is not valid base64url".to_string())
}
