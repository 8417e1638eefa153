# Sourced by the bench scripts that start a plain 3-node Synod cluster on 127.0.0.1 per run.
# Needs `base` (the port base: peers on base+1..3, clients on base+201..203, admin on
# base+301..303) and a `pids` array the caller's cleanup kills. Needs etcdctl.

# start_three BIN DIR [SERVER ARGS...]: starts nodes 1-3 of BIN with data and logs in DIR,
# extra arguments passed to every node, their pids in `pids`; waits until a put succeeds and
# sets `leader` to the leading node's id (1-3).
start_three() {
  local bin=$1 dir=$2
  shift 2
  local peers="1=127.0.0.1:$((base + 1)),2=127.0.0.1:$((base + 2)),3=127.0.0.1:$((base + 3))"
  local cl="1=127.0.0.1:$((base + 201)),2=127.0.0.1:$((base + 202)),3=127.0.0.1:$((base + 203))"
  local eps="127.0.0.1:$((base + 201)),127.0.0.1:$((base + 202)),127.0.0.1:$((base + 203))"
  pids=()
  for i in 1 2 3; do
    "$bin" server --id "$i" --peers "$peers" --clients "$cl" \
      --listen-client "127.0.0.1:$((base + 200 + i))" --listen-admin "127.0.0.1:$((base + 300 + i))" \
      --data-dir "$dir/n$i" "$@" >"$dir/$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 100); do
    etcdctl --endpoints "$eps" put warm 1 >/dev/null 2>&1 && break
    sleep 0.3
  done
  leader=$(etcdctl --endpoints "$eps" endpoint status -w json | python3 -c '
import json, sys
for i, s in enumerate(json.load(sys.stdin)):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(i + 1)')
}
