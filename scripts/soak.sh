#!/usr/bin/env bash
# Soak test (not part of CI): the full `tessera bench run` mix with writes against a release
# server for a long while, sampling the server's RSS and data-directory size every second.
#
#   scripts/soak.sh [DURATION] [CONCURRENCY]      defaults: 30m, 16
#
# Passes when the run had 0 errors and memory and disk reached a ceiling: the peak RSS of the
# last third of the run is less than 10 % above the peak of the middle third, and likewise the
# data directory. Memory legitimately grows for a while after start: RocksDB's memtables
# (64 MiB per relationship index) fill for many minutes at this write rate before their first
# flush, the block cache and the check cache fill; hence a long run and thirds rather than a
# fixed warm-up. The server runs with `--datastore-gc-window 2m --datastore-gc-interval 20s`
# so GC bounds the history within one run; the write-ahead log is bounded by RocksDB's
# max_total_wal_size (256 MiB), sampled separately.
# Results go to $SOAK_OUT (default ./target/soak): samples.csv, report.json, summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-30m}"
concurrency="${2:-16}"
out="${SOAK_OUT:-target/soak}"

scripts/setup-deps.sh build
cargo build --release --locked --bin tessera >&2
bin=target/release/tessera

rm -rf "$out"
mkdir -p "$out"
data="$out/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key="soak-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

TESSERA_GRPC_PRESHARED_KEY="$key" "$bin" serve --data-dir "$data" --grpc-addr "127.0.0.1:$port" \
    --metrics-addr off --datastore-gc-window 2m --datastore-gc-interval 20s \
    >"$out/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$sampler" 2>/dev/null || true
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
sampler=""
trap cleanup EXIT
for _ in $(seq 100); do
    grep -q "tessera is serving" "$out/server.log" && break
    sleep 0.2
done
grep -q "tessera is serving" "$out/server.log" || { cat "$out/server.log" >&2; exit 1; }

export TESSERA_ENDPOINT="http://127.0.0.1:$port" TESSERA_TOKEN="$key"
echo "==> loading the dataset" >&2
"$bin" bench load >&2

echo "==> sampling RSS and disk every second into $out/samples.csv" >&2
(
    echo "seconds,rss_kib,disk_bytes,wal_bytes"
    start=$(date +%s)
    while kill -0 "$server" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null || echo 0)
        disk=$(du -sb "$data" 2>/dev/null | cut -f1)
        wal=$(cat "$data"/*.log 2>/dev/null | wc -c)
        echo "$(( $(date +%s) - start )),$rss,$disk,$wal"
        sleep 1
    done
) >"$out/samples.csv" &
sampler=$!

echo "==> bench run for $duration at concurrency $concurrency" >&2
status=0
"$bin" bench run --duration "$duration" --warmup 5s --concurrency "$concurrency" \
    --timeout 60s --output "$out/report.json" >&2 || status=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
if ! kill -0 "$server" 2>/dev/null; then
    echo "the server died during the soak:" >&2
    tail -50 "$out/server.log" >&2
    exit 1
fi

python3 - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
rows = [(int(r["seconds"]), int(r["rss_kib"]), int(r["disk_bytes"] or 0), int(r["wal_bytes"] or 0))
        for r in csv.DictReader(open(f"{out}/samples.csv"))]
report = json.load(open(f"{out}/report.json"))
ops = report["runs"][0]["operations"]
errors = sum(o["error_count"] for o in ops)
requests = sum(o["count"] for o in ops if not o.get("aggregate"))
end = rows[-1][0]
middle = [r for r in rows if end / 3 <= r[0] < 2 * end / 3]
last = [r for r in rows if r[0] >= 2 * end / 3]
def growth(i):
    a, b = max(r[i] for r in middle), max(r[i] for r in last)
    return a, b, (b - a) / a * 100 if a else float("nan")
rss_mid, rss_last, rss_growth = growth(1)
disk_mid, disk_last, disk_growth = growth(2)
mib = lambda b: b / 2**20
lines = [
    f"duration: {end} s sampled, {requests} requests, {errors} errors",
    f"RSS peak: {mib(rss_mid * 1024):.0f} MiB in the middle third, {mib(rss_last * 1024):.0f} MiB "
    f"in the last third: {rss_growth:+.1f} %",
    f"disk peak: {mib(disk_mid):.0f} MiB in the middle third, {mib(disk_last):.0f} MiB in the last "
    f"third: {disk_growth:+.1f} % (write-ahead log at most {mib(max(r[3] for r in rows)):.0f} MiB)",
    "per minute (s, RSS MiB, disk MiB, WAL MiB): "
    + ", ".join(f"{r[0]}:{mib(r[1] * 1024):.0f}/{mib(r[2]):.0f}/{mib(r[3]):.0f}" for r in rows if r[0] % 60 == 0),
]
for o in ops:
    l = o["latency_ms"]
    lines.append(f"  {o['operation']:<22} {o['qps']:>9.1f}/s  p50 {l['p50']:.2f} ms  p99 {l['p99']:.2f} ms  errors {o['error_count']}")
ok = errors == 0 and rss_growth < 10 and disk_growth < 10
lines.append("PASS" if ok else "FAIL")
text = "\n".join(lines)
open(f"{out}/summary.txt", "w").write(text + "\n")
print(text)
sys.exit(0 if ok else 1)
PY
exit "$status"
