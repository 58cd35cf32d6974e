#!/usr/bin/env bash
# Installs the system packages Tessera's build (and, with `test`, its test suite) needs, when they
# are missing. The one place this is decided: run-server.sh and run-tests.sh both call it.
#
#   scripts/setup-deps.sh build   libclang (for the RocksDB bindings) and a C++ compiler
#   scripts/setup-deps.sh test    the above, plus python3-venv (official client tests) and
#                                 PostgreSQL (the Postgres store's tests start a private cluster)
#
# Options (mainly for the script's own test):
#   --dry-run            print `would install: PKG…` (or `nothing to install`) and change nothing
#
# Environment:
#   LIBCLANG_PATH        honoured as bindgen honours it: a directory holding libclang, or the file
#   TESSERA_SETUP_ROOT   prefix for every library folder searched (default: empty, i.e. `/`), so
#                        a test can point the detection at a simulated file system; commands
#                        (g++, python3) are still looked up on PATH
#
# Why not just `ls /usr/lib/llvm-*/lib/libclang*`: a fresh Debian machine has
# `libclang-cpp.so.14` (the C++ interface, pulled in by llvm) but not libclang itself, and that
# glob matches the former. bindgen (clang-sys, runtime loading) accepts only `libclang.so`,
# `libclang-N.so`, `libclang.so.N` or `libclang-N.so.M`, and explicitly skips `*-cpp.*`; the
# detection below applies exactly those rules over clang-sys's search directories.
set -euo pipefail

mode="${1:-build}"
dry_run=false
for arg in "${@:2}"; do
    case "$arg" in
        --dry-run) dry_run=true ;;
        *) echo "setup-deps.sh: unknown option \`$arg\`" >&2; exit 2 ;;
    esac
done
case "$mode" in
    build|test) ;;
    *) echo "setup-deps.sh: unknown mode \`$mode\` (expected \`build\` or \`test\`)" >&2; exit 2 ;;
esac

root="${TESSERA_SETUP_ROOT:-}"

# True when a file name is one clang-sys would load as libclang.
is_loadable_libclang() {
    local name="$1"
    case "$name" in
        *-cpp.*) return 1 ;;
        libclang.so|libclang-*.so|libclang.so.*|libclang-*.so.*) return 0 ;;
        *) return 1 ;;
    esac
}

# True when a directory holds a loadable libclang.
dir_has_libclang() {
    local dir="$1" f
    [ -d "$dir" ] || return 1
    for f in "$dir"/libclang*; do
        [ -e "$f" ] || continue
        is_loadable_libclang "$(basename "$f")" && return 0
    done
    return 1
}

have_libclang() {
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        if [ -f "$LIBCLANG_PATH" ] && is_loadable_libclang "$(basename "$LIBCLANG_PATH")"; then
            return 0
        fi
        dir_has_libclang "$LIBCLANG_PATH" && return 0
    fi
    # clang-sys's Linux search directories, in its order of preference (plus llvm-config's).
    local pattern dir
    if [ -z "$root" ] && command -v llvm-config >/dev/null 2>&1; then
        dir_has_libclang "$(llvm-config --libdir 2>/dev/null)" && return 0
    fi
    shopt -s nullglob
    for pattern in "$root"/usr/local/llvm*/lib* "$root"/usr/local/lib*/*/* "$root"/usr/local/lib*/* \
                   "$root"/usr/local/lib* "$root"/usr/lib*/*/* "$root"/usr/lib*/* "$root"/usr/lib*; do
        for dir in $pattern; do
            if dir_has_libclang "$dir"; then
                shopt -u nullglob
                return 0
            fi
        done
    done
    shopt -u nullglob
    return 1
}

have_command() {
    command -v "$1" >/dev/null 2>&1
}

# PostgreSQL's server binaries live in /usr/lib/postgresql/N/bin on Debian (not on PATH).
have_postgres_server() {
    local bin
    for bin in "$root"/usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && [ -x "$(dirname "$bin")/postgres" ] && [ -x "$(dirname "$bin")/pg_ctl" ] && return 0
    done
    return 1
}

need=()
have_libclang || need+=(libclang-dev)
have_command g++ || need+=(g++)
if [ "$mode" = test ]; then
    "${PYTHON:-python3}" -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
    have_postgres_server || need+=(postgresql)
fi

if [ ${#need[@]} -eq 0 ]; then
    $dry_run && echo "nothing to install"
    exit 0
fi
if $dry_run; then
    echo "would install: ${need[*]}"
    exit 0
fi

echo "==> installing system packages: ${need[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
