//! Authentication: the `authorization: bearer …` value, preshared keys, and JWTs of every
//! algorithm family with the claim checks, key selection and attacks they must withstand.
//! Keys under tests/auth/keys/ were generated for these tests with `openssl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};
use tessera::auth::{
    Auth, AuthConfig, AuthConfigError, AuthError, Caller, CallerKind, JwtKeySource, Secret,
};

const HMAC_SECRET: &str = "an-hmac-secret-that-is-long-enough-0123456789";

fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/auth/keys")
        .join(name)
}

fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": get_current_timestamp() + 600 })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn private_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(HMAC_SECRET.as_bytes())
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(&read_key("rsa_private.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read_key("ec256_private.pem")).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&read_key("ec384_private.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read_key("ed25519_private.pem")).unwrap(),
        other => panic!("no test key for {other:?}"),
    }
}

fn jwt_auth(keys: Vec<JwtKeySource>) -> Auth {
    Auth::from_config(AuthConfig {
        jwt_keys: keys,
        ..AuthConfig::default()
    })
    .unwrap()
}

fn all_key_sources() -> Vec<JwtKeySource> {
    vec![
        JwtKeySource::hmac_secret(HMAC_SECRET),
        JwtKeySource::public_key_file(key_path("rsa_public.pem")),
        JwtKeySource::public_key_file(key_path("ec256_public.pem")),
        JwtKeySource::public_key_file(key_path("ec384_public.pem")),
        JwtKeySource::public_key_file(key_path("ed25519_public.pem")),
    ]
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn unauthenticated(auth: &Auth, header: Option<&str>) -> String {
    match auth.authenticate(header) {
        Err(AuthError::Unauthenticated(m)) => m,
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

// ---- every algorithm family ------------------------------------------------------------

#[test]
fn every_algorithm_verifies_with_its_configured_key() {
    let auth = jwt_auth(all_key_sources());
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let sub = format!("svc-{alg:?}");
        let token = sign(alg, None, &claims(&sub), &private_key(alg));
        let caller = auth
            .authenticate(Some(&bearer(&token)))
            .unwrap_or_else(|e| panic!("{alg:?} rejected: {e}"));
        assert_eq!(
            caller,
            Caller {
                id: sub,
                kind: CallerKind::Jwt
            }
        );
    }
}

#[test]
fn rsa_public_key_in_pkcs1_form_is_accepted() {
    let auth = jwt_auth(vec![JwtKeySource::public_key_file(key_path(
        "rsa_public_pkcs1.pem",
    ))]);
    let token = sign(
        Algorithm::RS256,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::RS256),
    );
    assert_eq!(
        auth.authenticate(Some(&bearer(&token))).unwrap().id,
        "svc-a"
    );
}

#[test]
fn hmac_secret_from_a_file_ignores_the_trailing_line_break() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{HMAC_SECRET}\n")).unwrap();
    let auth = jwt_auth(vec![JwtKeySource::hmac_secret_file(&path)]);
    let token = sign(
        Algorithm::HS256,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::HS256),
    );
    assert_eq!(
        auth.authenticate(Some(&bearer(&token))).unwrap().id,
        "svc-a"
    );
}

// ---- claims ---------------------------------------------------------------------------

#[test]
fn expired_tokens_are_rejected() {
    let auth = jwt_auth(all_key_sources());
    let now = get_current_timestamp();
    let token = sign(
        Algorithm::RS256,
        None,
        &json!({"sub": "svc-a", "exp": now - 3600}),
        &private_key(Algorithm::RS256),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("expired"), "{m}");
}

#[test]
fn leeway_tolerates_small_clock_skew_only() {
    let now = get_current_timestamp();
    let token = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "svc-a", "exp": now - 10}),
        &private_key(Algorithm::HS256),
    );
    // The default leeway (30s) accepts a token that expired 10s ago...
    let lenient = jwt_auth(vec![JwtKeySource::hmac_secret(HMAC_SECRET)]);
    assert!(lenient.authenticate(Some(&bearer(&token))).is_ok());
    // ...and a zero leeway does not.
    let strict = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::hmac_secret(HMAC_SECRET)],
        jwt_leeway: Duration::ZERO,
        ..AuthConfig::default()
    })
    .unwrap();
    assert!(unauthenticated(&strict, Some(&bearer(&token))).contains("expired"));
}

#[test]
fn tokens_without_exp_are_rejected() {
    let auth = jwt_auth(all_key_sources());
    let token = sign(
        Algorithm::ES256,
        None,
        &json!({"sub": "svc-a"}),
        &private_key(Algorithm::ES256),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("`exp`"), "{m}");
}

#[test]
fn not_yet_valid_tokens_are_rejected() {
    let auth = jwt_auth(all_key_sources());
    let now = get_current_timestamp();
    let token = sign(
        Algorithm::EdDSA,
        None,
        &json!({"sub": "svc-a", "exp": now + 7200, "nbf": now + 3600}),
        &private_key(Algorithm::EdDSA),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("not valid yet"), "{m}");
    let ok = sign(
        Algorithm::EdDSA,
        None,
        &json!({"sub": "svc-a", "exp": now + 7200, "nbf": now - 5}),
        &private_key(Algorithm::EdDSA),
    );
    assert!(auth.authenticate(Some(&bearer(&ok))).is_ok());
}

fn iss_aud_auth() -> Auth {
    Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::hmac_secret(HMAC_SECRET)],
        jwt_issuers: vec!["https://idp.example".into()],
        jwt_audiences: vec!["tessera".into()],
        ..AuthConfig::default()
    })
    .unwrap()
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let auth = iss_aud_auth();
    let exp = get_current_timestamp() + 600;
    let key = private_key(Algorithm::HS256);
    let good = json!({"sub": "svc-a", "exp": exp, "iss": "https://idp.example", "aud": ["other", "tessera"]});
    assert!(
        auth.authenticate(Some(&bearer(&sign(Algorithm::HS256, None, &good, &key))))
            .is_ok()
    );

    let wrong_iss =
        json!({"sub": "svc-a", "exp": exp, "iss": "https://evil.example", "aud": "tessera"});
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(Algorithm::HS256, None, &wrong_iss, &key))),
    );
    assert!(m.contains("issuer"), "{m}");

    let wrong_aud =
        json!({"sub": "svc-a", "exp": exp, "iss": "https://idp.example", "aud": "billing"});
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(Algorithm::HS256, None, &wrong_aud, &key))),
    );
    assert!(m.contains("audience"), "{m}");

    // Configured claims are required, not just checked when present.
    let no_iss = json!({"sub": "svc-a", "exp": exp, "aud": "tessera"});
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(Algorithm::HS256, None, &no_iss, &key))),
    );
    assert!(m.contains("`iss`"), "{m}");
    let no_aud = json!({"sub": "svc-a", "exp": exp, "iss": "https://idp.example"});
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(Algorithm::HS256, None, &no_aud, &key))),
    );
    assert!(m.contains("`aud`"), "{m}");
}

#[test]
fn tokens_meant_for_an_audience_are_refused_when_none_is_configured() {
    let auth = jwt_auth(vec![JwtKeySource::hmac_secret(HMAC_SECRET)]);
    let token = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "svc-a", "exp": get_current_timestamp() + 600, "aud": "billing"}),
        &private_key(Algorithm::HS256),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("audience"), "{m}");
}

#[test]
fn subject_is_required_non_empty_and_not_reserved() {
    let auth = jwt_auth(all_key_sources());
    let key = private_key(Algorithm::HS256);
    let exp = get_current_timestamp() + 600;
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(
            Algorithm::HS256,
            None,
            &json!({"exp": exp}),
            &key,
        ))),
    );
    assert!(m.contains("`sub`"), "{m}");
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(
            Algorithm::HS256,
            None,
            &json!({"exp": exp, "sub": ""}),
            &key,
        ))),
    );
    assert!(m.contains("`sub`") && m.contains("empty"), "{m}");
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(
            Algorithm::HS256,
            None,
            &json!({"exp": exp, "sub": 42}),
            &key,
        ))),
    );
    assert!(m.contains("`sub`"), "{m}");
    for reserved in ["preshared-key:0", "anonymous"] {
        let token = sign(
            Algorithm::HS256,
            None,
            &json!({"exp": exp, "sub": reserved}),
            &key,
        );
        let m = unauthenticated(&auth, Some(&bearer(&token)));
        assert!(m.contains("reserved"), "{m}");
    }
    let long = "x".repeat(300);
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(
            Algorithm::HS256,
            None,
            &json!({"exp": exp, "sub": long}),
            &key,
        ))),
    );
    assert!(m.contains("longer than"), "{m}");
}

// ---- signatures and attacks -----------------------------------------------------------

#[test]
fn bad_signatures_are_rejected() {
    let auth = jwt_auth(all_key_sources());
    // Signed by a different RSA key than the configured one.
    let other = EncodingKey::from_rsa_pem(&read_key("rsa2_private.pem")).unwrap();
    let token = sign(Algorithm::RS256, None, &claims("svc-a"), &other);
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("signature"), "{m}");
    // A valid token whose payload was swapped afterwards.
    let token = sign(
        Algorithm::HS256,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::HS256),
    );
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims("admin-wannabe")),
        parts[2]
    );
    let m = unauthenticated(&auth, Some(&bearer(&forged)));
    assert!(m.contains("signature"), "{m}");
    // A wrong HMAC secret.
    let wrong = EncodingKey::from_secret(b"another-secret-that-is-long-enough-9876543210");
    let m = unauthenticated(
        &auth,
        Some(&bearer(&sign(
            Algorithm::HS512,
            None,
            &claims("svc-a"),
            &wrong,
        ))),
    );
    assert!(m.contains("signature"), "{m}");
}

#[test]
fn alg_none_is_rejected() {
    let auth = jwt_auth(all_key_sources());
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims("svc-a"))
        );
        let m = unauthenticated(&auth, Some(&bearer(&token)));
        assert!(m.contains("alg: none"), "{m}");
    }
}

#[test]
fn hs_token_signed_with_the_public_key_is_rejected() {
    // The algorithm confusion attack: the attacker knows the RSA public key and uses its
    // PEM text as an HMAC secret, hoping the server verifies HS256 with "the key".
    let auth = jwt_auth(vec![JwtKeySource::public_key_file(key_path(
        "rsa_public.pem",
    ))]);
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let forged = sign(
            alg,
            None,
            &claims("attacker"),
            &EncodingKey::from_secret(&read_key("rsa_public.pem")),
        );
        let m = unauthenticated(&auth, Some(&bearer(&forged)));
        assert!(
            m.contains(&format!("`{alg:?}`")) && m.contains("public key"),
            "{m}"
        );
    }
    // Same with a key selected by kid.
    let auth = jwt_auth(vec![
        JwtKeySource::public_key_file(key_path("ec256_public.pem")).with_kid("ec"),
    ]);
    let forged = sign(
        Algorithm::HS256,
        Some("ec"),
        &claims("attacker"),
        &EncodingKey::from_secret(&read_key("ec256_public.pem")),
    );
    let m = unauthenticated(&auth, Some(&bearer(&forged)));
    assert!(m.contains("not allowed for key `ec`"), "{m}");
}

#[test]
fn hmac_algorithms_cannot_be_configured_for_a_public_key() {
    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![
            JwtKeySource::public_key_file(key_path("rsa_public.pem"))
                .with_algorithms([Algorithm::HS256]),
        ],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            AuthConfigError::AlgorithmMismatch {
                algorithm: Algorithm::HS256,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("rsa_public.pem"), "{e}");
}

#[test]
fn algorithms_not_configured_for_the_key_are_rejected() {
    let auth = jwt_auth(vec![
        JwtKeySource::public_key_file(key_path("rsa_public.pem"))
            .with_algorithms([Algorithm::RS256]),
    ]);
    let ok = sign(
        Algorithm::RS256,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::RS256),
    );
    assert!(auth.authenticate(Some(&bearer(&ok))).is_ok());
    let other = sign(
        Algorithm::PS256,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::PS256),
    );
    let m = unauthenticated(&auth, Some(&bearer(&other)));
    assert!(m.contains("`PS256`"), "{m}");
    // An EC P-256 key accepts ES256 only, never ES384.
    let auth = jwt_auth(vec![JwtKeySource::public_key_file(key_path(
        "ec256_public.pem",
    ))]);
    let token = sign(
        Algorithm::ES384,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::ES384),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("`ES384`"), "{m}");
    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![
            JwtKeySource::public_key_file(key_path("ec256_public.pem"))
                .with_algorithms([Algorithm::ES384]),
        ],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, AuthConfigError::AlgorithmMismatch { .. }),
        "{e}"
    );
}

#[test]
fn unsupported_algorithms_and_critical_headers_are_rejected() {
    let auth = jwt_auth(all_key_sources());
    let token = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "HS1024"})),
        b64(&claims("svc-a"))
    );
    assert!(unauthenticated(&auth, Some(&bearer(&token))).contains("`HS1024`"));
    let token = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "HS256", "crit": ["exp-ext"]})),
        b64(&claims("svc-a"))
    );
    assert!(unauthenticated(&auth, Some(&bearer(&token))).contains("critical"));
}

// ---- JWKS -----------------------------------------------------------------------------

fn jwk(alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&private_key(alg), alg).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    jwk
}

fn write_jwks(dir: &Path, keys: Vec<Jwk>) -> PathBuf {
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&JwkSet { keys }).unwrap()).unwrap();
    path
}

#[test]
fn jwks_keys_are_selected_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_jwks(
        dir.path(),
        vec![
            jwk(Algorithm::RS256, "rsa-1"),
            jwk(Algorithm::ES256, "ec-1"),
            jwk(Algorithm::EdDSA, "ed-1"),
        ],
    );
    let auth = jwt_auth(vec![JwtKeySource::jwks_file(&path)]);
    for (alg, kid) in [
        (Algorithm::RS256, "rsa-1"),
        (Algorithm::ES256, "ec-1"),
        (Algorithm::EdDSA, "ed-1"),
    ] {
        let token = sign(alg, Some(kid), &claims(kid), &private_key(alg));
        assert_eq!(auth.authenticate(Some(&bearer(&token))).unwrap().id, kid);
    }
    // The right key id with the wrong key's signature fails...
    let token = sign(
        Algorithm::ES256,
        Some("ed-1"),
        &claims("x"),
        &private_key(Algorithm::ES256),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(m.contains("`ES256`") && m.contains("`ed-1`"), "{m}");
    // ...a JWK pinned to RS256 refuses PS256 ...
    let token = sign(
        Algorithm::PS256,
        Some("rsa-1"),
        &claims("x"),
        &private_key(Algorithm::PS256),
    );
    assert!(unauthenticated(&auth, Some(&bearer(&token))).contains("`PS256`"));
    // ...and an unknown key id is named as such.
    let token = sign(
        Algorithm::RS256,
        Some("rsa-2"),
        &claims("x"),
        &private_key(Algorithm::RS256),
    );
    let m = unauthenticated(&auth, Some(&bearer(&token)));
    assert!(
        m.contains("key id `rsa-2`") && m.contains("not a configured key"),
        "{m}"
    );
}

#[test]
fn jwks_skips_encryption_keys_and_rejects_malformed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = jwk(Algorithm::RS256, "enc-1");
    enc.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    let path = write_jwks(dir.path(), vec![enc, jwk(Algorithm::ES384, "ec-384")]);
    let auth = jwt_auth(vec![JwtKeySource::jwks_file(&path)]);
    let token = sign(
        Algorithm::RS256,
        Some("enc-1"),
        &claims("x"),
        &private_key(Algorithm::RS256),
    );
    assert!(unauthenticated(&auth, Some(&bearer(&token))).contains("not a configured key"));
    let token = sign(
        Algorithm::ES384,
        Some("ec-384"),
        &claims("svc"),
        &private_key(Algorithm::ES384),
    );
    assert!(auth.authenticate(Some(&bearer(&token))).is_ok());

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AAAA"}]}"#,
    )
    .unwrap();
    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::jwks_file(&bad)],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("bad.json") && e.to_string().contains("32 bytes"),
        "{e}"
    );

    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"keys":[]}"#).unwrap();
    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::jwks_file(&empty)],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(matches!(e, AuthConfigError::EmptyJwks { .. }), "{e}");
}

// ---- preshared keys and the header ----------------------------------------------------

fn preshared_auth() -> Auth {
    Auth::from_config(AuthConfig {
        preshared_keys: vec![Secret::new("first-key"), Secret::new("second-key")],
        ..AuthConfig::default()
    })
    .unwrap()
}

#[test]
fn preshared_keys_identify_their_index_never_the_key() {
    let auth = preshared_auth();
    let c = auth.authenticate(Some("bearer second-key")).unwrap();
    assert_eq!(
        c,
        Caller {
            id: "preshared-key:1".into(),
            kind: CallerKind::PresharedKey
        }
    );
    let c = auth.authenticate(Some("BEARER   first-key ")).unwrap();
    assert_eq!(c.id, "preshared-key:0");
    let m = unauthenticated(&auth, Some("Bearer first-ke"));
    assert!(
        !m.contains("first-ke"),
        "the message must not echo the token: {m}"
    );
    assert!(m.contains("preshared key"), "{m}");
}

#[test]
fn missing_or_malformed_authorization_is_unauthenticated_without_echo() {
    let auth = preshared_auth();
    assert!(unauthenticated(&auth, None).contains("missing `authorization`"));
    assert!(unauthenticated(&auth, Some("")).contains("bearer <token>"));
    assert!(unauthenticated(&auth, Some("Bearer")).contains("empty"));
    let m = unauthenticated(&auth, Some("Basic c2VjcmV0LXRva2Vu"));
    assert!(
        m.contains("bearer <token>") && !m.contains("c2VjcmV0"),
        "{m}"
    );
    let m = unauthenticated(&auth, Some("secret-token-without-scheme"));
    assert!(!m.contains("secret-token"), "{m}");
    let huge = format!("Bearer {}", "a".repeat(20_000));
    assert!(unauthenticated(&auth, Some(&huge)).contains("longer than"));
}

#[test]
fn preshared_keys_and_jwts_work_side_by_side() {
    let auth = Auth::from_config(AuthConfig {
        preshared_keys: vec![Secret::new("ops-key")],
        jwt_keys: vec![JwtKeySource::hmac_secret(HMAC_SECRET)],
        ..AuthConfig::default()
    })
    .unwrap();
    assert_eq!(
        auth.authenticate(Some("bearer ops-key")).unwrap().kind,
        CallerKind::PresharedKey
    );
    let token = sign(
        Algorithm::HS256,
        None,
        &claims("svc-a"),
        &private_key(Algorithm::HS256),
    );
    assert_eq!(
        auth.authenticate(Some(&bearer(&token))).unwrap().kind,
        CallerKind::Jwt
    );
    let m = unauthenticated(&auth, Some("bearer not-a-key"));
    assert!(m.contains("neither") && !m.contains("not-a-key"), "{m}");
    let m = unauthenticated(&auth, Some("bearer a.b.c"));
    assert!(!m.contains("a.b.c"), "{m}");
}

// ---- configuration --------------------------------------------------------------------

#[test]
fn configuration_requires_credentials_or_explicit_insecurity() {
    assert_eq!(
        Auth::from_config(AuthConfig::default()).unwrap_err(),
        AuthConfigError::NoCredentials
    );
    let insecure = Auth::from_config(AuthConfig {
        insecure: true,
        ..AuthConfig::default()
    })
    .unwrap();
    assert!(insecure.is_insecure());
    assert_eq!(
        insecure.authenticate(None).unwrap().kind,
        CallerKind::Anonymous
    );
    let both = AuthConfig {
        insecure: true,
        preshared_keys: vec![Secret::new("k")],
        ..AuthConfig::default()
    };
    assert_eq!(
        Auth::from_config(both).unwrap_err(),
        AuthConfigError::InsecureWithCredentials
    );
    // Without configuration nobody gets in.
    assert!(matches!(
        Auth::default().authenticate(Some("bearer x")),
        Err(AuthError::Unauthenticated(_))
    ));
}

#[test]
fn bad_key_files_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::public_key_file(&missing)],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, AuthConfigError::KeyFile { .. }) && e.to_string().contains("missing.pem"),
        "{e}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::public_key_file(&garbage)],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("garbage.pem") && e.to_string().contains("PEM"),
        "{e}"
    );

    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::public_key_file(key_path("rsa_private.pem"))],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("rsa_private.pem") && e.to_string().contains("private key"),
        "{e}"
    );

    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::hmac_secret("too-short")],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("HMAC secret #1") && e.to_string().contains("at least 32 bytes"),
        "{e}"
    );
    assert!(!e.to_string().contains("too-short"), "{e}");

    let e = Auth::from_config(AuthConfig {
        jwt_keys: vec![JwtKeySource::hmac_secret(HMAC_SECRET)],
        jwt_leeway: Duration::from_secs(7200),
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(matches!(e, AuthConfigError::LeewayTooLarge { .. }), "{e}");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = AuthConfig {
        preshared_keys: vec![Secret::new("super-secret-preshared")],
        jwt_keys: vec![
            JwtKeySource::hmac_secret(HMAC_SECRET),
            JwtKeySource::public_key_file(key_path("rsa_public.pem")),
        ],
        ..AuthConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("super-secret-preshared") && !shown.contains(HMAC_SECRET),
        "{shown}"
    );
    let auth = Auth::from_config(config).unwrap();
    let shown = format!("{auth:?}");
    assert!(
        !shown.contains("super-secret-preshared") && !shown.contains(HMAC_SECRET),
        "{shown}"
    );
    assert!(
        shown.contains("rsa_public.pem"),
        "Debug should still show the key origins: {shown}"
    );
}

#[test]
fn auth_can_be_shared_across_request_handlers() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<Auth>();
    let auth = preshared_auth();
    let copy = auth.clone();
    let handle =
        std::thread::spawn(move || copy.authenticate(Some("bearer first-key")).map(|c| c.id));
    assert_eq!(handle.join().unwrap().unwrap(), "preshared-key:0");
}
