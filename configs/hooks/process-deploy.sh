#!/bin/sh
# Plain-process deploy hook for scbe-agent: records the ordered version and restarts the
# process that serves it. Point SCBE_PROCESS_DIR at a directory of the agent's own; set
# SCBE_SERVE_CMD to the command that serves a version (it receives SCBE_VERSION and the unit
# URIs in its environment). Without SCBE_SERVE_CMD the hook only records the version (demo mode).
set -eu
dir="${SCBE_PROCESS_DIR:-./process}"
mkdir -p "$dir"
if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
  kill "$(cat "$dir/pid")" || true
fi
if [ -n "${SCBE_SERVE_CMD:-}" ]; then
  nohup sh -c "$SCBE_SERVE_CMD" >"$dir/serve.log" 2>&1 &
  echo $! >"$dir/pid"
  sleep 1
  kill -0 "$(cat "$dir/pid")" || { echo "serving process exited at once; see $dir/serve.log" >&2; exit 1; }
fi
printf '%s\n' "$SCBE_VERSION" >"$dir/version.tmp" && mv "$dir/version.tmp" "$dir/version"
echo "serving $SCBE_VERSION (release $SCBE_RELEASE_DIGEST)"
