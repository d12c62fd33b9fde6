#!/usr/bin/env bash
# Three Warden members on this machine, as one ensemble: builds the
# binaries, starts members 1, 2 and 3 (data in ./ensemble-data/dN, logs in
# ./ensemble-data/memberN.log), prints `warden status` and `member list`,
# and stops every member gracefully (SIGTERM: hand-off, then drain) on
# Ctrl-C. Run it again to restart the same ensemble from its data.
#
#   docs/examples/three-members.sh
#
# Member N serves gRPC on 127.0.0.1:N7181, the ZooKeeper protocol on
# 127.0.0.1:N2181, admin HTTP on 127.0.0.1:N7180 and its peers on
# 127.0.0.1:7N82.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin warden-server --bin warden
bin=target/release
data=ensemble-data
mkdir -p "$data"
peers=1=127.0.0.1:7182,2=127.0.0.1:7282,3=127.0.0.1:7382
servers=127.0.0.1:17181,127.0.0.1:27181,127.0.0.1:37181
pids=()
stop() {
  echo "stopping the members (each hands off and moves its clients first)"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
for i in 1 2 3; do
  "$bin/warden-server" --server-id "$i" --data-dir "$data/d$i" --peers "$peers" \
    --listen "127.0.0.1:${i}7181" --zk-listen "127.0.0.1:${i}2181" \
    --admin-listen "127.0.0.1:${i}7180" --peer-listen "127.0.0.1:7${i}82" \
    2>>"$data/member$i.log" &
  pids+=($!)
done
# Wait (up to 30 s) until all three answer, follow one leader and are
# caught up.
for _ in $(seq 300); do
  "$bin/warden" --servers "$servers" status 2>/dev/null | grep -q "safe to stop one member: yes" && break
  sleep 0.1
done
"$bin/warden" --servers "$servers" status
"$bin/warden" --servers "$servers" member list
echo
echo "ensemble running: WARDEN_SERVERS=$servers $bin/warden ls /"
echo "ZooKeeper clients: 127.0.0.1:12181,127.0.0.1:22181,127.0.0.1:32181"
echo "Ctrl-C stops it"
wait "${pids[@]}"
