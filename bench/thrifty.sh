#!/bin/bash
# Thrifty sends (seed 002): `synod server --SETTING all` against `quorum`, side by side, where
# SETTING is `read-probes` (the default: whom a leader probes before a linearizable read) or
# `accept-targets` (whom it sends each write's accept to); or `notice-ticks`, 0 against 1 (how
# long a leader may hold back the notices nobody waits for).
#
# For each round and each mode, starts a fresh 3-node cluster on 127.0.0.1 (ports from
# PORT, default 25100), writes for a second, then runs `synod bench run` at the leader with
# WORKLOAD (default get, linearizable), CLIENTS (64) and CONNS (8), 1,000 keys, 1 s warm-up
# and 5 s measured, ROUNDS times (default 3). Prints one line per run: setting, ops/s, server
# CPU per op (µs, the three servers' user + system time), p50 and p99 (ms), and each node's
# CPU ticks over the run, so the follower left out shows. docs/performance.md ("Thrifty read
# probes", "Thrifty accepts") has what it measured. Needs etcdctl (Debian's etcd-client).
# For accepts: SETTING=accept-targets WORKLOAD=put CLIENTS=1 CONNS=1 bench/thrifty.sh
# For notices: SETTING=notice-ticks WORKLOAD=put CLIENTS=1 CONNS=1 bench/thrifty.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SYNOD:-}" ]; then
  cargo build --release -p synod >&2
  SYNOD=./target/release/synod
fi
setting=${SETTING:-read-probes}
case $setting in
  read-probes | accept-targets) modes="all quorum" ;;
  notice-ticks) modes="0 1" ;;
  *) echo "SETTING must be read-probes, accept-targets or notice-ticks, not $setting" >&2; exit 2 ;;
esac
workload=${WORKLOAD:-get}
clients=${CLIENTS:-64}
conns=${CONNS:-8}
rounds=${ROUNDS:-3}
base=${PORT:-25100}
work=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; rm -rf "$work"' EXIT
# shellcheck source=bench/three-nodes.sh
source bench/three-nodes.sh
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
  local mode=$1 dir
  sync
  dir=$(mktemp -d "$work/run.XXXX")
  start_three "$SYNOD" "$dir" "--$setting" "$mode"
  local ep="127.0.0.1:$((base + 200 + leader))"
  "$SYNOD" bench run --endpoints "$ep" --workload put --clients 8 --conns 2 --keys 1000 \
    --warmup 0s --duration 1s --quiet >/dev/null 2>&1
  local before=() after=()
  for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
  "$SYNOD" bench run --endpoints "$ep" --workload "$workload" --clients "$clients" \
    --conns "$conns" --keys 1000 --warmup 1s --duration 5s \
    --server-pids "$(IFS=,; echo "${pids[*]}")" --quiet --json "$dir/r.json" \
    >/dev/null 2>"$dir/bench.err" || {
    cat "$dir/bench.err" >&2
    exit 1
  }
  for p in "${pids[@]}"; do after+=("$(ticks "$p")"); done
  python3 - "$dir/r.json" "$mode" "$leader" "${before[@]}" "${after[@]}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]
b, a = sys.argv[4:7], sys.argv[7:10]
ticks = " ".join(f"n{i + 1}={int(a[i]) - int(b[i])}" for i in range(3))
print(f"{sys.argv[2]:>6}  ops/s {r['throughput']:8.0f}  server CPU/op {r['server_cpu_us_per_op']:6.1f} us  "
      f"p50 {lat['p50']:6.3f} ms  p99 {lat['p99']:6.3f} ms  CPU ticks {ticks} (leader n{sys.argv[3]})")
PY
  stop
  rm -rf "$dir"
}

for _ in $(seq "$rounds"); do
  for mode in $modes; do
    run "$mode"
  done
done
