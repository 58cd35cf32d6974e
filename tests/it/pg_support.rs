//! A private PostgreSQL cluster for the tests.
//!
//! One cluster per run of the test binary, started lazily by the first test that needs it:
//! `initdb` in a temporary folder, a free loopback port, run as an unprivileged user (the
//! `postgres` system user of Debian's package when the tests run as root, since PostgreSQL
//! refuses to run as root). All tests are one binary without a global teardown, so a watchdog
//! process holds a pipe from this process and stops the cluster and removes its folder when
//! the pipe closes, i.e. when the test process exits however it exits.
//!
//! Each test gets a fresh database, copied from a template that is already migrated.
//! A test that cannot get PostgreSQL fails with the reason: it never silently skips.
//!
//! `TESSERA_TEST_PG_BIN` overrides the directory of the server binaries.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tessera::store::postgres::{PostgresOptions, PostgresStore};

const TEMPLATE: &str = "tessera_template";
const SUPERUSER: &str = "tessera";

/// A running cluster owned by this test process.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// Run server commands as this user (`None`: as ourselves).
    run_as: Option<String>,
    /// Closing it (at exit) makes the watchdog stop the cluster.
    _watchdog: (Child, ChildStdin),
}

fn server_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("TESSERA_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            format!(
                "PostgreSQL's server binaries are not installed (/usr/lib/postgresql: {e}); \
                 run `scripts/setup-deps.sh test` (Debian package `postgresql`)"
            )
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no PostgreSQL server under /usr/lib/postgresql/*/bin".to_string())
}

fn is_root() -> bool {
    // The owner of /proc/self is our effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// A new cluster of its own (tests that stop and restart the server use one).
    pub fn start() -> Result<Cluster, String> {
        let bin = server_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("tessera-pg-")
            .tempdir()
            .map_err(|e| format!("temporary folder: {e}"))?
            .keep();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let status = Command::new("chown")
                .args([&format!("{user}:"), &dir.display().to_string()])
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "cannot hand {} to the `{user}` user (is Debian's postgresql package installed?)",
                    dir.display()
                ));
            }
        }
        // The watchdog first: from now on the folder (and the server) go away with us.
        let pg_ctl = bin.join("pg_ctl");
        let data = dir.join("data");
        let stop = format!(
            "{} '{}' stop -D '{}' -m immediate >/dev/null 2>&1; rm -rf '{}'",
            run_as
                .as_ref()
                .map(|u| format!("runuser -u {u} --"))
                .unwrap_or_default(),
            pg_ctl.display(),
            data.display(),
            dir.display()
        );
        // In a process group of its own and deaf to INT/TERM/HUP: a Ctrl-C or a signal to
        // the test's process group must not take the watchdog down with the tests.
        let mut watchdog = Command::new("sh")
            .args([
                "-c",
                &format!("trap '' INT TERM HUP; cat >/dev/null; {stop}"),
            ])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the watchdog: {e}"))?;
        let pipe = watchdog.stdin.take().ok_or("the watchdog has no stdin")?;
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            run_as,
            _watchdog: (watchdog, pipe),
        };
        cluster.server_command(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.pg_start() {
                Ok(()) => {
                    cluster.create_template()?;
                    return Ok(cluster);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn server_command(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("running {program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500 \
             -c shared_buffers=64MB",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.server_command(
            "pg_ctl",
            &[
                "start",
                "-D",
                &self.data(),
                "-w",
                "-t",
                "60",
                "-l",
                &log,
                "-o",
                &options,
            ],
        )
        .map(|_| ())
        .map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        self.server_command("pg_ctl", &["stop", "-D", &self.data(), "-m", "fast", "-w"])
            .expect("pg_ctl stop");
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        self.pg_start().expect("pg_ctl start");
    }

    pub fn uri(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with psql against `database`; returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-A",
                "-t",
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql `{sql}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn create_template(&self) -> Result<(), String> {
        self.psql("postgres", &format!("CREATE DATABASE {TEMPLATE}"))?;
        tessera::store::postgres::migrate(&self.uri(TEMPLATE))
            .map_err(|e| format!("migrating the template database: {e}"))?;
        Ok(())
    }

    /// A new, empty, migrated database; returns its name.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The template may still be "in use" for a moment after its last connection.
            match self.psql(
                "postgres",
                &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"),
            ) {
                Ok(_) => return name,
                Err(e) if Instant::now() < deadline && e.contains("being accessed") => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot create a test database: {e}"),
            }
        }
    }

    /// A new, empty, never-migrated database; returns its name.
    pub fn empty_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "e{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .expect("create an empty database");
        name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The shared cluster of this test run.
pub fn cluster() -> &'static Cluster {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match SHARED.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(e) => panic!(
            "the PostgreSQL tests need a private PostgreSQL cluster and could not start one: {e}"
        ),
    }
}

/// Options for a test store on `uri`: small pools, quick probes.
pub fn options(uri: &str) -> PostgresOptions {
    PostgresOptions {
        read_pool_size: 8,
        write_pool_size: 4,
        probe_interval: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
        ..PostgresOptions::new(uri)
    }
}

/// A store on a fresh database of the shared cluster.
pub fn fresh_store() -> PostgresStore {
    let c = cluster();
    let db = c.fresh_database();
    PostgresStore::open(options(&c.uri(&db))).expect("open a PostgreSQL store")
}
