#!/bin/sh
# Builds synod (release) and runs the side-by-side comparison with etcd: a 3-node Synod and a
# 3-member etcd on this machine, every workload against both alternately, medians of 3 rounds.
# Writes bench/results/{compare.json,table.md,latency-throughput.svg}; with --profile also a
# perf profile of Synod's leader under the 64-client put in bench/results/profile/.
# Any other flag goes to `synod bench compare` (see `synod bench compare --help`), e.g. --quick.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p synod
exec ./target/release/synod bench compare --out bench/results "$@"
