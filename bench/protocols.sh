#!/bin/bash
# Multi-Paxos against Fast Multi-Paxos, side by side in one run: two 3-node Synod clusters on
# this machine (`synod cluster --protocol multi|fast-multi`), puts (256-byte values, 1,000 keys)
# sent to the leader and to a follower, at 1 and at 64 clients, every case against both
# clusters alternately, ROUNDS rounds (default 3) of DURATION each (default 5s).
#
# For each run it prints throughput, median latency, and the servers' CPU per operation: the
# user + system time of the three server processes (from /proc) over the run, divided by the
# operations. With the load generator on the same 2 cores, that is the figure that decides
# throughput. Then the medians per case. Output also goes to bench/results/protocols.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p synod >&2
synod=./target/release/synod
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
work=$(mktemp -d)
out=bench/results/protocols.txt
mkdir -p bench/results
tck=$(getconf CLK_TCK)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Client ports: node 1 on BASE, node i on BASE + 10000 * i; admin on those + 2.
declare -A base=([multi]=13379 [fast-multi]=14379)
port() { if [ "$2" = 1 ]; then echo "$1"; else echo $(($1 + 10000 * $2)); fi; }

for proto in multi fast-multi; do
  b=${base[$proto]}
  "$synod" cluster --nodes 3 --protocol "$proto" --data-dir "$work/$proto" \
    --client-port "$b" --peer-port $((b + 1)) >"$work/$proto.log" 2>&1 &
  pids+=($!)
done

# Which node leads, by the status pages (waits for an election).
leader_of() {
  local b=$1
  for _ in $(seq 1 100); do
    for i in 1 2 3; do
      if curl -fs "http://127.0.0.1:$(port $((b + 2)) "$i")/status" | grep -q '"role":"leader"'; then
        echo "$i"
        return
      fi
    done
    sleep 0.1
  done
  echo "no leader in $b" >&2
  exit 2
}

cpu_ticks() {
  local total=0
  for p in $(pgrep -f "synod server .*--data-dir $work/$1/"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

# Warm both clusters up (and let them elect).
for proto in multi fast-multi; do
  b=${base[$proto]}
  leader_of "$b" >/dev/null
  "$synod" bench run --endpoints "127.0.0.1:$b" --clients 8 --duration 2s >/dev/null
done

: >"$work/runs"
printf '%-11s %-8s %7s %5s %10s %9s %12s\n' protocol target clients round "ops/s" "p50 ms" "CPU us/op" | tee "$out"
for round in $(seq 1 "$rounds"); do
  for target in leader follower; do
    for clients in 1 64; do
      for proto in multi fast-multi; do
        b=${base[$proto]}
        l=$(leader_of "$b")
        if [ "$target" = leader ]; then n=$l; else n=$((l % 3 + 1)); fi
        conns=$((clients < 8 ? 1 : 8))
        before=$(cpu_ticks "$proto")
        res=$("$synod" bench run --endpoints "127.0.0.1:$(port "$b" "$n")" \
          --clients "$clients" --conns "$conns" --duration "$duration" 2>>"$work/bench.log")
        after=$(cpu_ticks "$proto")
        ops=$(echo "$res" | sed -n 's/.*(\([0-9]*\) ops,.*/\1/p' | head -1)
        rate=$(echo "$res" | sed -n 's/^\([0-9.]*\) ops\/s.*/\1/p' | head -1)
        p50=$(echo "$res" | sed -n 's/.*p50 \([0-9.]*\).*/\1/p' | head -1)
        cpu=$(awk -v d=$((after - before)) -v t="$tck" -v o="$ops" 'BEGIN { printf "%.0f", d / t * 1e6 / (o > 0 ? o : 1) }')
        printf '%-11s %-8s %7s %5s %10s %9s %12s\n' "$proto" "$target" "$clients" "$round" "$rate" "$p50" "$cpu" | tee -a "$out"
        echo "$proto $target $clients $rate $p50 $cpu" >>"$work/runs"
      done
    done
  done
done

echo | tee -a "$out"
echo "medians over $rounds rounds:" | tee -a "$out"
printf '%-11s %-8s %7s %10s %9s %12s\n' protocol target clients "ops/s" "p50 ms" "CPU us/op" | tee -a "$out"
for target in leader follower; do
  for clients in 1 64; do
    for proto in multi fast-multi; do
      med() { awk -v p="$proto" -v t="$target" -v c="$clients" -v f="$1" '$1==p && $2==t && $3==c {print $f}' "$work/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
      printf '%-11s %-8s %7s %10s %9s %12s\n' "$proto" "$target" "$clients" "$(med 4)" "$(med 5)" "$(med 6)" | tee -a "$out"
    done
  done
done
