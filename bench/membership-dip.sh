#!/bin/bash
# The write dip during a membership change (docs/performance.md). One round: a 3-node cluster
# on loopback under 64 closed-loop put clients (`synod bench run --timeline 100ms`); with
# MODE=change, a learner is added ~5 s into the measured window, started empty to join, promoted
# once in sync, and removed 2 s later. The events' offsets from the measured window's start go
# to OUT.events, the bench's JSON to OUT. Needs etcdctl, bc and a release build.
#   bench/membership-dip.sh steady|change OUT.json
set -u
if [ $# -ne 2 ] || { [ "$1" != steady ] && [ "$1" != change ]; }; then
  echo "usage: $0 steady|change OUT.json" >&2; exit 2
fi
MODE=$1; OUT=$2
S=${SYNOD:-$(dirname "$0")/../target/release/synod}
D=$(mktemp -d)
P="1=127.0.0.1:24101,2=127.0.0.1:24102,3=127.0.0.1:24103"
C="1=127.0.0.1:24201,2=127.0.0.1:24202,3=127.0.0.1:24203"
for i in 1 2 3; do
  RUST_LOG=warn $S server --id $i --peers $P --clients $C --listen-client 127.0.0.1:2420$i \
    --listen-admin 127.0.0.1:2430$i --data-dir $D/n$i 2>$D/n$i.log &
done
E=127.0.0.1:24201,127.0.0.1:24202,127.0.0.1:24203
sleep 2
until etcdctl --endpoints=$E put warm up >/dev/null 2>&1; do sleep 0.2; done
T0=$(date +%s.%N)
$S bench run --endpoints $E --clients 64 --conns 4 --warmup 2s --duration 12s --timeline 100ms \
  --no-preload --json $OUT --quiet > $OUT.txt 2>&1 &
B=$!
ev() { echo "$(echo "$(date +%s.%N) - $T0 - 2" | bc) $*" >> $OUT.events; }
: > $OUT.events
if [ "$MODE" = change ]; then
  sleep 7
  ev add; etcdctl --endpoints=$E member add n4 --learner --peer-urls=http://127.0.0.1:24104 >/dev/null 2>&1; ev added
  RUST_LOG=warn $S server --id 4 --peers $P,4=127.0.0.1:24104 --clients $C,4=127.0.0.1:24204 \
    --listen-client 127.0.0.1:24204 --listen-admin 127.0.0.1:24304 --data-dir $D/n4 \
    --initial-cluster-state existing 2>$D/n4.log &
  ev started
  until etcdctl --endpoints=$E member promote 4 >/dev/null 2>&1; do sleep 0.05; done; ev promoted
  sleep 2
  ev remove; etcdctl --endpoints=$E member remove 4 >/dev/null 2>&1; ev removed
fi
wait $B
pkill -f "data-dir $D/"; while pgrep -f "data-dir $D/" >/dev/null; do sleep 0.2; done; sleep 1
rm -rf $D
