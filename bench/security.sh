#!/bin/bash
# What TLS and auth cost: a 3-node cluster (`synod cluster`) in three modes, one after the
# other in each round so the machine's drift hits them alike:
#   plain  no TLS, no auth;
#   tls    `synod cluster --tls`: clients over TLS with certificates, mutual TLS between nodes;
#   auth   no TLS, auth enabled; the load generator logs in as a user whose role may write the
#          benchmark's keys (a prefix permission), so every put carries a token that is
#          checked and a permission checked when the put is applied.
# In each, puts of 256-byte values at the leader with 1 client, then 64 clients over 8
# connections. Prints one line per run and then, per mode and client count, the medians over
# ROUNDS rounds (default 3) of ops/s, p50 and p99 latency (ms) and the servers' CPU per put
# (µs, user + system of the three server processes). docs/performance.md ("Security") has what
# it measured. Needs etcdctl (Debian's etcd-client).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SYNOD:-}" ]; then
  cargo build --release -p synod >&2
  SYNOD=./target/release/synod
fi
rounds=${ROUNDS:-3}
duration=${DURATION:-8s}
port=${PORT:-15379}
modes=${MODES:-plain tls auth}
work=$(mktemp -d)
cluster=

stop() {
  if [ -n "$cluster" ]; then
    kill "$cluster" 2>/dev/null || true
    wait "$cluster" 2>/dev/null || true
    cluster=
  fi
}
trap 'stop; rm -rf "$work"' EXIT

ports=("$port" $((port + 20000)) $((port + 30000)))
results=$work/results.txt
: >"$results"
for round in $(seq 1 "$rounds"); do
  for mode in $modes; do
    data=$work/$mode-$round
    tls=()
    [ "$mode" = tls ] && tls=(--tls)
    "$SYNOD" cluster --data-dir "$data" --client-port "$port" --peer-port $((port + 1)) "${tls[@]}" \
      >"$work/cluster.log" 2>&1 &
    cluster=$!
    scheme=""
    ctl=(etcdctl --command-timeout=2s)
    bench=()
    if [ "$mode" = tls ]; then
      scheme="https://"
      t=$data/tls
      ctl+=(--cacert="$t/ca.pem" --cert="$t/client.pem" --key="$t/client-key.pem")
      bench+=(--cacert "$t/ca.pem" --cert "$t/client.pem" --key "$t/client-key.pem")
    fi
    eps=$(printf "${scheme}127.0.0.1:%s," "${ports[@]}")
    ctl+=(--endpoints="${eps%,}")
    until "${ctl[@]}" put security-probe x >/dev/null 2>&1; do sleep 0.1; done
    if [ "$mode" = auth ]; then
      "${ctl[@]}" user add root --new-user-password=rootpw >/dev/null
      "${ctl[@]}" user grant-role root root >/dev/null
      "${ctl[@]}" role add bench >/dev/null
      "${ctl[@]}" role grant-permission bench readwrite bench/ --prefix=true >/dev/null
      "${ctl[@]}" user add bencher --new-user-password=pw >/dev/null
      "${ctl[@]}" user grant-role bencher bench >/dev/null
      "${ctl[@]}" auth enable >/dev/null
      bench+=(--user bencher:pw)
    fi
    # Admin HTTP is served over TLS, with client certificates, when the clients' API is.
    status=(curl -fs)
    [ "$mode" = tls ] && status+=(--cacert "$t/ca.pem" --cert "$t/client.pem" --key "$t/client-key.pem")
    leader=
    for p in "${ports[@]}"; do
      if "${status[@]}" "${scheme:-http://}127.0.0.1:$((p + 2))/status" | grep -q '"role":"leader"'; then leader=$p; fi
    done
    [ -n "$leader" ] || { echo "no leader found in $mode mode" >&2; exit 1; }
    pids=$(pgrep -f "server .*--data-dir $data/" | paste -sd, -)
    for clients in 1 64; do
      conns=$((clients == 1 ? 1 : 8))
      out=$work/run.txt
      "$SYNOD" bench run --endpoints "${scheme}127.0.0.1:$leader" --workload put --clients "$clients" \
        --conns "$conns" --warmup 2s --duration "$duration" --server-pids "$pids" --quiet \
        --json "$work/run.json" "${bench[@]}" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
      line=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print("%.0f %.2f %.2f %.1f %d" % (r["throughput"], l["p50"], l["p99"], r["server_cpu_us_per_op"] or 0, r["errors"]))
' "$work/run.json")
      echo "round $round $mode clients $clients: ops/s p50 p99 cpu_us/put errors = $line"
      echo "$mode $clients $line" >>"$results"
    done
    stop
  done
done
echo "medians over $rounds rounds (ops/s, p50 ms, p99 ms, server CPU µs per put):"
python3 - "$results" <<'EOF'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    mode, clients, *v = line.split()
    rows.setdefault((mode, int(clients)), []).append([float(x) for x in v])
base = {c: st.median(r[3] for r in v) for (m, c), v in rows.items() if m == "plain"}
for (mode, clients), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = [st.median(r[i] for r in v) for i in range(4)]
    ratio = med[3] / base[clients] if base.get(clients) else float("nan")
    print(f"{mode:6} {clients:3} clients: {med[0]:8.0f} ops/s  p50 {med[1]:6.2f}  p99 {med[2]:6.2f}  cpu {med[3]:7.1f} us/put ({ratio:.2f}x plain)")
EOF
