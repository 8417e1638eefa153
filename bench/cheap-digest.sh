#!/bin/bash
# Cheap Paxos with a main down: what sending the auxiliary digests of large batches saves.
#
# Starts two mains and one auxiliary (`synod server --auxiliaries 3`) with long election
# timeouts (10-20 s, so the cluster does not shrink to one main during the run), stops the main
# that does not lead, and runs VALUE-byte puts (default 65536) at the leader for 8 s with 1 and
# with 16 clients, once with `--aux-digest-min off` and once with the default (16384), ROUNDS
# times (default 3), alternating. While a main is down the auxiliary votes on every slot.
#
# Prints one line per run: digest setting, clients, puts/s, server CPU per put (the leader and
# the auxiliary, user + system, µs), p50 and p99 (ms), and the bytes of log records the
# auxiliary wrote. docs/performance.md ("Digests to an auxiliary") has what it measured. Needs
# etcdctl (Debian's etcd-client) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SYNOD:-}" ]; then
  cargo build --release -p synod >&2
  SYNOD=./target/release/synod
fi
value=${VALUE:-65536}
rounds=${ROUNDS:-3}
base=${PORT:-24100}
work=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; rm -rf "$work"' EXIT

aux_bytes() {
  curl -s "127.0.0.1:$((base + 303))/metrics" |
    awk '/^synod_aux_record_bytes_written_total/{print $2}'
}

# One run: digest setting, clients.
run() {
  local digest=$1 clients=$2 dir
  # The last run's data off the disk first: writing back hundreds of MB of it slowed the next
  # run to a third in one try.
  sync
  dir=$(mktemp -d "$work/run.XXXX")
  local peers="1=127.0.0.1:$((base + 1)),2=127.0.0.1:$((base + 2)),3=127.0.0.1:$((base + 3))"
  local eps="127.0.0.1:$((base + 201)),127.0.0.1:$((base + 202))"
  local common=(--peers "$peers" --clients "1=127.0.0.1:$((base + 201)),2=127.0.0.1:$((base + 202))"
    --auxiliaries 3 --election-ticks 1000 --aux-digest-min "$digest")
  pids=()
  for i in 1 2; do
    "$SYNOD" server --id "$i" "${common[@]}" --listen-client "127.0.0.1:$((base + 200 + i))" \
      --listen-admin "127.0.0.1:$((base + 300 + i))" --data-dir "$dir/n$i" >"$dir/$i.log" 2>&1 &
    pids+=($!)
  done
  "$SYNOD" server --id 3 "${common[@]}" --auxiliary --listen-admin "127.0.0.1:$((base + 303))" \
    --data-dir "$dir/n3" >"$dir/3.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    etcdctl --endpoints "$eps" put warm 1 >/dev/null 2>&1 && break
    sleep 0.3
  done
  local leader
  leader=$(etcdctl --endpoints "$eps" endpoint status -w json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(1 if s[0]["Status"]["leader"] == s[0]["Status"]["header"]["member_id"] else 2)')
  local follower=$((3 - leader))
  kill "${pids[$((follower - 1))]}"
  wait "${pids[$((follower - 1))]}" 2>/dev/null || true
  sleep 1
  local before after
  before=$(aux_bytes)
  "$SYNOD" bench run --endpoints "127.0.0.1:$((base + 200 + leader))" --workload put \
    --clients "$clients" --conns $((clients < 8 ? clients : 8)) --value-size "$value" \
    --keys 100 --warmup 1s --duration 8s --server-pids "${pids[$((leader - 1))]},${pids[2]}" \
    --quiet --json "$dir/r.json" >/dev/null 2>"$dir/bench.err" || {
    cat "$dir/bench.err" >&2
    exit 1
  }
  after=$(aux_bytes)
  python3 - "$dir/r.json" "$digest" "$clients" $((after - before)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]
print(f"digest {sys.argv[2]:>5}  clients {sys.argv[3]:>2}  puts/s {r['throughput']:7.0f}  "
      f"server CPU/put {r['server_cpu_us_per_op']:7.1f} us  p50 {lat['p50']:6.2f} ms  "
      f"p99 {lat['p99']:6.2f} ms  auxiliary wrote {int(sys.argv[4]):>11} bytes")
PY
  stop
  rm -rf "$dir"
}

for _ in $(seq "$rounds"); do
  for clients in 1 16; do
    for digest in off 16384; do
      run "$digest" "$clients"
    done
  done
done
