//! The Prometheus endpoint of `tessera serve`: the global `metrics` recorder (which the API
//! layer's per-RPC counters and latency histograms report to), store gauges refreshed in the
//! background, and a minimal HTTP/1.1 responder for `GET /metrics`.
//!
//! The responder is deliberately tiny (one request per connection, bounded header size and
//! read time): a scrape endpoint needs nothing more, and binding the socket ourselves lets the
//! server fail fast on a busy port and log the address actually bound.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::service::Tessera;

use super::error::CliError;

/// Latency buckets (seconds) of every histogram: from 50µs checks to multi-second lookups.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// How often the store gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(10);
/// How often histogram upkeep runs.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Longest request head accepted, and how long a client may take to send it.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the global Prometheus recorder; call once, before any metric is recorded.
pub fn install_recorder() -> Result<PrometheusHandle, CliError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| CliError::Failed(format!("cannot set up the metrics recorder: {e}")))?;
    metrics::describe_gauge!(
        "tessera_store_head_revision",
        "The newest committed revision of the store."
    );
    metrics::describe_gauge!(
        "tessera_store_oldest_readable_revision",
        "The oldest revision still readable (the garbage-collection window's edge)."
    );
    metrics::describe_gauge!(
        "tessera_store_disk_bytes",
        metrics::Unit::Bytes,
        "Bytes used by the data directory on disk."
    );
    metrics::describe_counter!(
        "tessera_check_cache_hits_total",
        "Check sub-problems answered by the cache shared across requests."
    );
    metrics::describe_counter!(
        "tessera_check_cache_carried_hits_total",
        "Cache hits answered by an answer computed at an earlier revision that nothing written since affects (part of the hits)."
    );
    metrics::describe_counter!(
        "tessera_check_cache_misses_total",
        "Check sub-problems looked up in the shared cache and not found (or expired)."
    );
    metrics::describe_counter!(
        "tessera_lookup_plan_cache_hits_total",
        "LookupResources plans taken from the shared cache (at their revision or carried to a later one)."
    );
    metrics::describe_counter!(
        "tessera_lookup_plan_cache_misses_total",
        "LookupResources plans walked because the shared cache held none that holds."
    );
    metrics::describe_counter!(
        "tessera_lookup_subjects_cache_hits_total",
        "LookupSubjects results (without caveat context) taken from the shared cache."
    );
    metrics::describe_counter!(
        "tessera_lookup_subjects_cache_misses_total",
        "LookupSubjects results (without caveat context) evaluated because the shared cache held none that holds."
    );
    metrics::describe_gauge!(
        "tessera_check_cache_entries",
        "Answers currently held by the shared check cache."
    );
    Ok(handle)
}

/// Runs histogram upkeep forever (it keeps memory bounded between scrapes).
pub async fn run_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// Refreshes the store and check-cache gauges forever.
pub async fn run_store_gauges(tessera: Arc<Tessera>, data_dir: Option<PathBuf>) {
    let mut tick = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        tick.tick().await;
        let cache = tessera.check_cache_stats();
        metrics::counter!("tessera_check_cache_hits_total").absolute(cache.hits);
        metrics::counter!("tessera_check_cache_carried_hits_total").absolute(cache.carried);
        metrics::counter!("tessera_check_cache_misses_total").absolute(cache.misses);
        metrics::gauge!("tessera_check_cache_entries").set(cache.entries as f64);
        metrics::counter!("tessera_lookup_plan_cache_hits_total").absolute(cache.plan_hits);
        metrics::counter!("tessera_lookup_plan_cache_misses_total").absolute(cache.plan_misses);
        metrics::counter!("tessera_lookup_subjects_cache_hits_total").absolute(cache.subjects_hits);
        metrics::counter!("tessera_lookup_subjects_cache_misses_total")
            .absolute(cache.subjects_misses);
        let store = tessera.store().clone();
        let dir = data_dir.clone();
        let sample = tokio::task::spawn_blocking(move || {
            (
                store.head_revision().ok(),
                store.oldest_readable_revision().ok(),
                dir.as_deref().map(disk_usage),
            )
        })
        .await;
        let Ok((head, oldest, disk)) = sample else {
            continue;
        };
        if let Some(h) = head {
            metrics::gauge!("tessera_store_head_revision").set(h.0 as f64);
        }
        if let Some(o) = oldest {
            metrics::gauge!("tessera_store_oldest_readable_revision").set(o.0 as f64);
        }
        if let Some(disk) = disk {
            metrics::gauge!("tessera_store_disk_bytes").set(disk as f64);
        }
    }
}

/// Total size of the regular files under `dir` (RocksDB keeps a flat directory).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Serves `GET /metrics` on `listener` forever.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = respond(stream, &handle).await {
                tracing::debug!(error = %e, "metrics endpoint: request failed");
            }
        });
    }
}

async fn respond(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > MAX_REQUEST_HEAD {
                return Err(std::io::Error::other("request head too large"));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(READ_TIMEOUT, read_head)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;

    let request_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are served at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET is supported\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_sums_files_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 23]).unwrap();
        assert_eq!(disk_usage(dir.path()), 123);
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
    }
}
