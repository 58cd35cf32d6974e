//! Helpers of the CLI tests: run the real `tessera` binary, start `tessera serve` on a free
//! loopback port with a temporary data directory, and stop it with a signal.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KEY: &str = "test-preshared-key-0123456789";

/// How long a server may take to start or stop.
const STARTUP: Duration = Duration::from_secs(60);

/// A `tessera` command with the environment cleared of `TESSERA_*` settings.
pub fn tessera() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// Runs `tessera ARGS` to completion.
pub fn run(args: &[&str]) -> Run {
    tessera().args(args).output().expect("run tessera").into()
}

/// Runs `tessera ARGS` with `input` on stdin.
pub fn run_with_stdin(args: &[&str], input: &str) -> Run {
    let mut child = tessera()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for tessera").into()
}

/// `serve --grpc-addr 127.0.0.1:0 --log-format text --data-dir DIR`.
fn serve_args(data_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--log-format",
        "text",
        "--data-dir",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(data_dir.into());
    args
}

/// A running `tessera serve`.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub data_dir: PathBuf,
    pub metrics_addr: Option<String>,
    /// The HTTP/JSON API's address, when `--http-enabled`.
    pub http_addr: Option<String>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on free loopback ports with a preshared key ([`KEY`]).
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(
            data_dir,
            &["--grpc-preshared-key", KEY, "--metrics-addr", ""],
        )
    }

    /// Starts a server with `extra` flags (after `--grpc-addr 127.0.0.1:0 --data-dir DIR`).
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = tessera();
        cmd.args(serve_args(data_dir)).args(extra);
        Server::spawn(cmd, data_dir)
    }

    /// Like [`Server::start_with`], with the server's address space capped at `max_bytes`
    /// (RLIMIT_AS, set by the shell that execs it), so a runaway allocation makes the server
    /// fail (and the test with it) instead of exhausting the machine.
    pub fn start_capped(data_dir: &Path, max_bytes: u64, extra: &[&str]) -> Server {
        let mut cmd = Command::new("bash");
        for (k, _) in std::env::vars() {
            if k.starts_with("TESSERA_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null())
            // Few malloc arenas: each reserves 64 MiB of address space per thread otherwise.
            .env("MALLOC_ARENA_MAX", "2")
            .args(["-c", r#"ulimit -v "$1" && shift && exec "$@""#, "bash"])
            .arg((max_bytes / 1024).to_string())
            .arg(env!("CARGO_BIN_EXE_tessera"))
            .args(serve_args(data_dir))
            .args(extra);
        Server::spawn(cmd, data_dir)
    }

    fn spawn(mut cmd: Command, data_dir: &Path) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let logs = logs.clone();
            // Keeps draining stderr for the server's whole life (a full pipe would block it).
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("tessera is serving") {
                        let _ = ready_tx.send(line.clone());
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + STARTUP;
        let line = loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(50)) {
                break line;
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "tessera serve exited with {status} before serving:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "tessera serve did not start in time"
            );
        };
        let field = |name: &str| -> Option<String> {
            let start = line.find(&format!("{name}="))? + name.len() + 1;
            let value: String = line[start..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            Some(value.trim_matches('"').to_string())
        };
        let grpc = field("grpc_addr").expect("grpc_addr in the startup line");
        let metrics_addr = field("metrics_addr").filter(|m| m != "disabled");
        let http_addr = field("http_addr").filter(|m| m != "disabled");
        Server {
            child,
            endpoint: format!("http://{grpc}"),
            data_dir: data_dir.to_path_buf(),
            metrics_addr,
            http_addr,
            logs,
        }
    }

    /// Runs a client subcommand against this server with the preshared key.
    pub fn cli(&self, args: &[&str]) -> Run {
        tessera()
            .args(args)
            .env("TESSERA_ENDPOINT", &self.endpoint)
            .env("TESSERA_TOKEN", KEY)
            .output()
            .expect("run tessera")
            .into()
    }

    /// Like [`Server::cli`], with `input` on stdin.
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = tessera()
            .args(args)
            .env("TESSERA_ENDPOINT", &self.endpoint)
            .env("TESSERA_TOKEN", KEY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("wait for tessera").into()
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends `signal` (e.g. `TERM`) and waits for the process to exit.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread collect the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "tessera serve did not stop:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed midway must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on which nothing listens (bound, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
