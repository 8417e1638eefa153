#!/bin/bash
# Synod at scale: a 3-node cluster (`synod cluster`) is loaded with KEYS keys of 256-byte values
# (default 1,000,000), then puts run in WINDOWS windows of 2 s each (default 40; 64 clients
# over 8 connections, sent to the leader), then the cluster is stopped and started again.
#
# Prints, in this order: each node's resident memory (VmRSS, KiB) empty; the load's duration;
# the memory after the load, and each node's log bytes then; one line per window (start, ops/s,
# p50/p90/p99 ms, the servers' CPU per put in µs, each node's resident memory in MiB at its end),
# then the median and the worst window; the
# memory after the windows, and the most each node held since it started (VmHWM); the nodes'
# snapshot, checkpoint and slow-loop log lines, so windows that overlapped a snapshot can be
# told apart, and the mean of those windows against the others; the data directory sizes; and the time from starting the stopped cluster again
# until a put succeeds, the most each node held while starting, and its memory after a window
# of puts. docs/performance.md ("Scale") has what it measured. Needs etcdctl (Debian's
# etcd-client) for the probe puts.
#
# The control: SYNOD_SNAPSHOT_EVERY=1000000000 bash bench/scale.sh takes no snapshot at all (the
# nodes read the variable), so its windows show how far single 2 s windows stray on this
# machine with nothing in the background: the floor a snapshot's dip is judged against.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SYNOD:-}" ]; then
  cargo build --release -p synod >&2
  SYNOD=./target/release/synod
fi
keys=${KEYS:-1000000}
windows=${WINDOWS:-40}
port=${PORT:-14379}
work=$(mktemp -d)
data=$work/data
log=$work/cluster.log
cluster=

stop() {
  if [ -n "$cluster" ]; then
    kill "$cluster" 2>/dev/null || true
    wait "$cluster" 2>/dev/null || true
    cluster=
  fi
}
trap 'stop; rm -rf "$work"' EXIT

start() {
  "$SYNOD" cluster --data-dir "$data" --client-port "$port" --peer-port $((port + 1)) >>"$log" 2>&1 &
  cluster=$!
}
server_pids() { pgrep -f "server .*--data-dir $data/" | paste -sd, -; }
rss() { mem VmRSS; }
# The most each node has held resident since it started (VmHWM): snapshots peak between samples.
peak() { mem VmHWM; }
mem() { for p in $(pgrep -f "server .*--data-dir $data/"); do awk -v f="$1:" '$1 == f {print $2}' "/proc/$p/status"; done | paste -sd' ' -; }
# Client ports: node 1 on PORT, node i > 1 on PORT + 10000 * i; status pages on those + 2.
endpoints="127.0.0.1:$port,127.0.0.1:$((port + 20000)),127.0.0.1:$((port + 30000))"
leader() {
  for p in $port $((port + 20000)) $((port + 30000)); do
    if curl -fs "127.0.0.1:$((p + 2))/status" | grep -q '"role":"leader"'; then echo "127.0.0.1:$p"; return; fi
  done
  return 1
}
log_bytes() {
  for p in $port $((port + 20000)) $((port + 30000)); do
    curl -fs "127.0.0.1:$((p + 2))/status" | grep -o '"log_bytes":[0-9]*' | cut -d: -f2
  done | paste -sd' ' -
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }'; }
wait_for_put() { until etcdctl --endpoints="$endpoints" --command-timeout=1s put scale-probe x >/dev/null 2>&1; do sleep 0.05; done; }

start
wait_for_put
echo "rss_kib_empty $(rss)"
target=$(leader)
t0=$(date +%s.%N)
"$SYNOD" bench run --endpoints "$target" --workload put --clients 64 --conns 8 --keys "$keys" \
  --warmup 0s --duration 1s --quiet >/dev/null 2>"$work/load.err" || { cat "$work/load.err" >&2; exit 1; }
echo "load_s $(since "$t0")"
sleep 2
echo "rss_kib_loaded $(rss)"
# The write-ahead log since each node's last checkpoint: about what its replica holds in memory
# as the log since its last snapshot.
echo "log_bytes_loaded $(log_bytes)"
out=$work/window.txt
rates=$work/rates.txt
timeline=$work/timeline.txt
: >"$rates"
: >"$timeline"
for i in $(seq 1 "$windows"); do
  # UTC, as the nodes' log lines are, so windows and snapshots can be lined up below.
  at=$(date -u +%H:%M:%S.%N | cut -c1-12)
  "$SYNOD" bench run --endpoints "$target" --workload put --clients 64 --conns 8 --keys "$keys" \
    --no-preload --warmup 0s --duration 2s --server-pids "$(server_pids)" --quiet >"$out" 2>&1
  echo "window $i $at $(sed -n 2p "$out" | cut -d' ' -f1) ops/s" \
    "$(grep -o 'p50 [0-9.]*  p90 [0-9.]*  p99 [0-9.]*' "$out")" \
    "$(grep -o 'servers [0-9.]* us' "$out")" \
    "rss_mib $(rss | awk '{ for (i = 1; i <= NF; i++) printf "%s%d", (i > 1 ? " " : ""), $i / 1024 }')"
  echo "$at $(sed -n 2p "$out" | cut -d' ' -f1)" >>"$timeline"
  sed -n 2p "$out" | cut -d' ' -f1 >>"$rates"
done
# The dip: the worst window against the median of all of them.
sort -n "$rates" | awk '{ r[NR] = $1 } END { if (NR) printf "windows: median %d ops/s, worst %d (%.0f%% of the median)\n", r[int((NR + 1) / 2)], r[1], 100 * r[1] / r[int((NR + 1) / 2)] }'

sleep 2
echo "rss_kib_after $(rss)"
echo "rss_kib_peak $(peak)"
grep -E "encoding a snapshot|encoded a snapshot|checkpoint saved|slow node loop" "$log" | sed 's/\x1b\[[0-9;]*m//g' || true
# The dip as a mean rather than one window (the worst window of one binary ranged from 60% to
# 82% of the median between runs): the windows that overlapped any node's snapshot, from the
# start of its encode to its checkpoint saved (or to the end, for one still going when the
# windows ended), against the others.
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk -v timeline="$timeline" '
  function secs(t,   p) { split(t, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
  match($0, /T[0-9:.]+Z/) { t = secs(substr($0, RSTART + 1, RLENGTH - 2)) }
  /encoding a snapshot in the background/ && match($0, /node=[0-9]+/) {
    begun[substr($0, RSTART + 5, RLENGTH - 5)] = t
  }
  /checkpoint saved/ && match($0, /node=[0-9]+/) {
    node = substr($0, RSTART + 5, RLENGTH - 5)
    if (node in begun) { from[++n] = begun[node]; to[n] = t; delete begun[node] }
  }
  END {
    for (node in begun) { from[++n] = begun[node]; to[n] = 1e9 }
    while ((getline line < timeline) > 0) {
      split(line, f, " "); at = secs(f[1]); during = 0
      for (i = 1; i <= n; i++) if (at < to[i] && at + 2 > from[i]) during = 1
      if (during) { sd += f[2]; nd++ } else { so += f[2]; no++ }
    }
    if (nd && no) printf "windows during a snapshot: %d, mean %d ops/s; others: %d, mean %d ops/s (%.0f%%)\n", nd, sd / nd, no, so / no, 100 * (sd / nd) / (so / no)
    else printf "windows during a snapshot: %d; others: %d\n", nd, no
  }'

du -sh "$data"/*
stop
t0=$(date +%s.%N)
start
wait_for_put
echo "restart_to_first_put_s $(since "$t0")"
echo "rss_kib_restart_peak $(peak)"
# Memory freed while starting is returned to the system once the allocator next runs (mimalloc
# purges after a delay, on a later allocation): measured after a window of puts, an idle node
# would still count memory it no longer holds.
"$SYNOD" bench run --endpoints "$endpoints" --workload put --clients 64 --conns 8 --keys "$keys" \
  --no-preload --warmup 0s --duration 2s --quiet >"$out" 2>&1
echo "restarted window $(sed -n 2p "$out" | cut -d' ' -f1) ops/s"
sleep 2
echo "rss_kib_restarted $(rss)"
