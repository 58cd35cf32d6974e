#!/usr/bin/env bash
# Builds Tessera (release) and starts a durable server on 127.0.0.1:50051 with its data in
# ./tessera-data. Extra arguments are passed to `tessera serve` (see `tessera serve --help`).
#
# Authentication: when neither the arguments nor the environment configure any (a preshared
# key, a JWT key, a --config file or --insecure-no-auth), the server uses a preshared key
# kept in ./.tessera-key, generated on the first run. Clients use it with:
#     export TESSERA_TOKEN="$(cat .tessera-key)"
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup-deps.sh build

echo "==> cargo build --release" >&2
cargo build --release --locked --bin tessera

auth_configured=false
data_dir_configured=false
for arg in "$@"; do
    case "$arg" in
        --grpc-preshared-key*|--jwt-hs-secret-file*|--jwt-public-key-file*|--jwt-jwks-file*|--insecure-no-auth*)
            auth_configured=true ;;
        --config*)
            auth_configured=true; data_dir_configured=true ;;
        --data-dir*)
            data_dir_configured=true ;;
    esac
done
[ -z "${TESSERA_DATA_DIR:-}${TESSERA_CONFIG:-}" ] || data_dir_configured=true
for var in TESSERA_GRPC_PRESHARED_KEY TESSERA_JWT_HS_SECRET_FILE TESSERA_JWT_PUBLIC_KEY_FILE \
           TESSERA_JWT_JWKS_FILE TESSERA_INSECURE_NO_AUTH TESSERA_CONFIG; do
    if [ -n "${!var:-}" ]; then auth_configured=true; fi
done

if [ "$auth_configured" = false ]; then
    key_file=.tessera-key
    if [ ! -s "$key_file" ]; then
        (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$key_file")
        echo "==> generated a preshared key in ./$key_file" >&2
    fi
    # Passed through the environment, so the key does not show in the process list.
    TESSERA_GRPC_PRESHARED_KEY="$(cat "$key_file")"
    export TESSERA_GRPC_PRESHARED_KEY
    echo "==> clients authenticate with: export TESSERA_TOKEN=\"\$(cat $key_file)\"" >&2
fi

data_dir_args=()
[ "$data_dir_configured" = true ] || data_dir_args=(--data-dir ./tessera-data)
exec ./target/release/tessera serve "${data_dir_args[@]}" "$@"
