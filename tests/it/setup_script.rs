//! `scripts/setup-deps.sh`, the one set-up step of `run-server.sh` and `run-tests.sh`: it must
//! request `libclang-dev` exactly when bindgen would find no loadable libclang. Run against a
//! simulated file system (`TESSERA_SETUP_ROOT`) in `--dry-run` mode, so nothing is installed.

use std::path::Path;
use std::process::Command;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-deps.sh")
}

/// What the script would install for `mode` with `root` as the file system.
fn dry_run(mode: &str, root: &Path, libclang_path: Option<&Path>) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .args([mode, "--dry-run"])
        .env("TESSERA_SETUP_ROOT", root)
        .env_remove("LIBCLANG_PATH");
    if let Some(p) = libclang_path {
        cmd.env("LIBCLANG_PATH", p);
    }
    let out = cmd.output().expect("run setup-deps.sh");
    assert!(
        out.status.success(),
        "setup-deps.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_string()
}

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, b"").expect("write");
}

#[test]
fn only_libclang_cpp_present_requests_libclang_dev() {
    // What a fresh Debian machine has: the C++ interface library, not libclang itself.
    let root = tempfile::tempdir().expect("tempdir");
    touch(root.path(), "usr/lib/llvm-14/lib/libclang-cpp.so.14");
    touch(root.path(), "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
    let out = dry_run("build", root.path(), None);
    assert!(out.contains("libclang-dev"), "{out}");
}

#[test]
fn every_name_bindgen_loads_counts_as_installed() {
    for name in [
        "usr/lib/llvm-14/lib/libclang.so",
        "usr/lib/llvm-14/lib/libclang-14.so",
        "usr/lib/llvm-14/lib/libclang.so.1",
        "usr/lib/x86_64-linux-gnu/libclang-14.so.1",
        "usr/local/lib/libclang.so",
    ] {
        let root = tempfile::tempdir().expect("tempdir");
        touch(root.path(), "usr/lib/llvm-14/lib/libclang-cpp.so.14");
        touch(root.path(), name);
        let out = dry_run("build", root.path(), None);
        assert!(!out.contains("libclang-dev"), "{name}: {out}");
    }
}

#[test]
fn libclang_path_is_honoured_as_bindgen_honours_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    touch(elsewhere.path(), "libclang-cpp.so.14");
    let out = dry_run("build", root.path(), Some(elsewhere.path()));
    assert!(out.contains("libclang-dev"), "{out}");
    touch(elsewhere.path(), "libclang-16.so.1");
    let out = dry_run("build", root.path(), Some(elsewhere.path()));
    assert!(!out.contains("libclang-dev"), "{out}");
}

#[test]
fn test_mode_requests_a_postgres_server_when_its_binaries_are_missing() {
    let root = tempfile::tempdir().expect("tempdir");
    touch(root.path(), "usr/lib/llvm-14/lib/libclang.so.1");
    let out = dry_run("test", root.path(), None);
    assert!(out.contains("postgresql"), "{out}");
    // The build alone does not need it.
    assert!(!dry_run("build", root.path(), None).contains("postgresql"));
    for bin in ["initdb", "pg_ctl", "postgres"] {
        touch(root.path(), &format!("usr/lib/postgresql/15/bin/{bin}"));
        let p = root.path().join(format!("usr/lib/postgresql/15/bin/{bin}"));
        let mut perms = std::fs::metadata(&p).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&p, perms).expect("chmod");
    }
    let out = dry_run("test", root.path(), None);
    assert!(!out.contains("postgresql"), "{out}");
}
