//! The official `authzed` Python client against a real `tessera serve`, over every RPC of the
//! `authzed.api.v1` API.
//!
//! The server runs from the built binary on a free loopback port with a temporary data
//! directory, a preshared key and HS256 JWT verification (issuer and audience required). Before
//! it starts, `tessera access grant` gives one JWT caller the `read` capability on the data
//! directory, so the script can exercise a caller that may read but not write. The script,
//! `tests/clients/client_e2e.py`, runs in the venv `tests/clients/setup.sh` prepares (PyPI access
//! is needed on the first run only) and prints one line per step; on failure the test shows its
//! whole output and the server's log.

use crate::cli_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cli_support::{KEY, Server, run};

/// The JWT caller granted `read` before the server starts.
const READER: &str = "svc-e2e-reader";
const ISSUER: &str = "https://issuer.tessera.test";
const AUDIENCE: &str = "tessera-e2e";
/// HMAC secret of the test's JWTs (at least 32 bytes, as the server requires).
const JWT_SECRET: &str = "client-e2e-hs256-secret-0123456789abcdefghijklmn";
/// Upper bound on the script's run; it normally takes about a second.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs `setup.sh` (idempotent, locked) and returns the venv's interpreter.
fn venv_python() -> PathBuf {
    let setup = clients_dir().join("setup.sh");
    let output = Command::new("bash")
        .arg(&setup)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
    assert!(
        output.status.success(),
        "tests/clients/setup.sh failed to install the official authzed Python client \
         (python3 with venv and PyPI access are needed on the first run):\n--- stdout ---\n{}\
         --- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    clients_dir().join(".venv/bin/python")
}

/// Collects everything a child writes to one pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The script's exit status (`None` when it had to be killed) and its stdout and stderr.
struct ScriptRun {
    success: Option<bool>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the script to completion, killing it after [`SCRIPT_TIMEOUT`].
fn run_script(mut child: Child) -> ScriptRun {
    let started = Instant::now();
    let stdout = drain(child.stdout.take().expect("script stdout is piped"));
    let stderr = drain(child.stderr.take().expect("script stderr is piped"));
    let success = loop {
        match child.try_wait().expect("wait for the script") {
            Some(status) => break Some(status.success()),
            None if started.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    ScriptRun {
        success,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        elapsed: started.elapsed(),
    }
}

#[test]
fn official_python_client_drives_every_rpc() {
    let python = venv_python();
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let secret_file = dir.path().join("jwt-secret");
    std::fs::write(&secret_file, JWT_SECRET).expect("write the JWT secret file");

    // Capabilities are granted offline, on the data directory of a server not yet running.
    let data_arg = data_dir.to_str().expect("temp path is UTF-8");
    run(&["access", "grant", READER, "read", "--data-dir", data_arg]).ok();

    let secret_arg = secret_file.to_str().expect("temp path is UTF-8");
    let server = Server::start_with(
        &data_dir,
        &[
            "--grpc-preshared-key",
            KEY,
            "--metrics-addr",
            "",
            "--jwt-hs-secret-file",
            secret_arg,
            "--jwt-algorithm",
            "HS256",
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    );
    let endpoint = server
        .endpoint
        .strip_prefix("http://")
        .expect("the endpoint is a plaintext URL")
        .to_string();

    let script = clients_dir().join("client_e2e.py");
    let child = Command::new(&python)
        .arg(&script)
        .args(["--endpoint", &endpoint])
        .args([
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--reader",
            READER,
        ])
        .env("TESSERA_E2E_PRESHARED_KEY", KEY)
        .env("TESSERA_E2E_JWT_SECRET", JWT_SECRET)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let outcome = run_script(child);

    let verdict = match outcome.success {
        Some(true) => None,
        Some(false) => Some("failed".to_string()),
        None => Some(format!(
            "did not finish within {}s and was killed",
            SCRIPT_TIMEOUT.as_secs()
        )),
    };
    if let Some(verdict) = verdict {
        panic!(
            "client_e2e.py {verdict} after {:.1}s\n--- stdout ---\n{}--- stderr ---\n{}\
             --- server log ---\n{}",
            outcome.elapsed.as_secs_f64(),
            outcome.stdout,
            outcome.stderr,
            server.logs()
        );
    }

    print!("{}", outcome.stdout);

    // The server shuts down cleanly after the client's streams (watches, exports) were cancelled.
    let (status, logs) = server.stop("TERM");
    assert!(
        status.success(),
        "tessera serve exited with {status} after SIGTERM:\n{logs}"
    );
}
