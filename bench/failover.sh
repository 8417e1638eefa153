#!/bin/bash
# A leader crash under load, seen by clients of the followers: what the puts forwarded to the
# dead leader cost.
#
# For each binary in BINS (default: a release build of this checkout), ROUNDS times (default
# 3), the binaries alternating: starts a fresh 3-node cluster on 127.0.0.1 (ports from PORT,
# default 27100), runs `synod bench run` with 16 put clients over 4 connections against the
# two followers' endpoints (their puts are forwarded to the leader), 1,000 keys, 1 s warm-up
# and 8 s measured with a 100 ms timeline, and kills the leader with SIGKILL 4 s after the
# bench starts. Prints one line per run: puts/s, errors, p99.9 and the slowest put (ms), the
# median 100 ms interval, how many intervals fell below half of it and to zero, and the
# intervals around the dip. docs/performance.md ("A leader crash under load") has what it
# measured. Needs etcdctl (Debian's etcd-client).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BINS:-}" ]; then
  cargo build --release -p synod >&2
  BINS=./target/release/synod
fi
rounds=${ROUNDS:-3}
base=${PORT:-27100}
work=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; rm -rf "$work"' EXIT
# shellcheck source=bench/three-nodes.sh
source bench/three-nodes.sh

run() {
  local bin=$1 dir followers=""
  dir=$(mktemp -d "$work/run.XXXX")
  start_three "$bin" "$dir"
  for i in 1 2 3; do
    [ "$i" != "$leader" ] && followers="$followers,127.0.0.1:$((base + 200 + i))"
  done
  (sleep 4 && kill -9 "${pids[$((leader - 1))]}") &
  local killer=$!
  "$bin" bench run --endpoints "${followers#,}" --workload put --clients 16 --conns 4 \
    --keys 1000 --warmup 1s --duration 8s --timeline 100ms --quiet --json "$dir/r.json" \
    >/dev/null 2>"$dir/bench.err" || {
    cat "$dir/bench.err" >&2
    exit 1
  }
  wait "$killer" 2>/dev/null || true
  python3 - "$dir/r.json" "$bin" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat, ops = r["latency_ms"], r["timeline"]["ops"]
median = sorted(ops)[len(ops) // 2]
low = [i for i, n in enumerate(ops) if n < median / 2]
around = ops[max(low[0] - 1, 0):low[-1] + 2] if low else []
print(f"{sys.argv[2]}: puts/s {r['throughput']:6.0f}  errors {r['errors']}  "
      f"p99.9 {lat['p999']:6.1f} ms  slowest {lat['max']:6.1f} ms  median/100ms {median}  "
      f"below half {len(low)}  zero {sum(1 for n in ops if n == 0)}  around the dip {around}")
PY
  stop
  rm -rf "$dir"
}

for _ in $(seq "$rounds"); do
  for bin in $BINS; do
    run "$bin"
  done
done
