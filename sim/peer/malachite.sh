#!/usr/bin/env bash
# The peer figure BENCHMARKS.md sets sequential decisions against: Malachite's channel example
# (github.com/informalsystems/malachite, code/examples/channel) with its two 500 ms sleeps set to
# 0 (the app's pause after a commit and its simulated proposal time), 4 nodes on loopback,
# decided heights counted on node 0 over SECONDS after 10 s of warm-up.
#
#   sim/peer/malachite.sh MALACHITE_CHECKOUT [SECONDS]
#
# Builds the example in release mode (about 7 minutes on 2 cores) unless
# $MALACHITE_TARGET already holds it. Needs crates.io; nothing here runs in CI.
set -euo pipefail
SRC=${1:?usage: malachite.sh MALACHITE_CHECKOUT [SECONDS]}
SECS=${2:-60}
TARGET=${MALACHITE_TARGET:-$SRC/target}
BIN=$TARGET/release/informalsystems-malachitebft-example-channel
APP=$SRC/code/examples/channel/src
if grep -q 'from_millis(500)' "$APP/app.rs" "$APP/state.rs"; then
  sed -i 's/sleep(Duration::from_millis(500))/sleep(Duration::from_millis(0))/' "$APP/app.rs" "$APP/state.rs"
fi
if [[ ! -x $BIN ]]; then
  (cd "$SRC/code" && CARGO_TARGET_DIR=$TARGET cargo build --release -p informalsystems-malachitebft-example-channel)
fi
HOME_DIR=$(mktemp -d /tmp/malachite.XXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$HOME_DIR"; }
trap cleanup EXIT
"$BIN" testnet --nodes 4 --home "$HOME_DIR" --deterministic >/dev/null 2>&1
for i in 0 1 2 3; do
  "$BIN" start --home "$HOME_DIR/$i" >"$HOME_DIR/$i.log" 2>&1 &
  pids+=($!)
done
sleep 10
decided() { grep -c "Consensus has decided on value" "$HOME_DIR/0.log" || true; }
before=$(decided)
sleep "$SECS"
after=$(decided)
echo "malachite channel example, 4 nodes on loopback: $((after - before)) heights in ${SECS} s ($(( (after - before) / SECS ))/s)"
