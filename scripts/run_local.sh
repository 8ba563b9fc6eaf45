#!/usr/bin/env bash
# `make run`: a development LiveKit server (127.0.0.1:7880), one Piper worker
# (127.0.0.1:7001) and the orchestrator (127.0.0.1:8080, ops 8081) in the embedded
# single-node mode: no Redis, no containers. The browser page at http://127.0.0.1:8080/ is
# built first when Node.js is installed. Ctrl-C stops everything.
#
# LiveKit is the server the tests use, built once from its Go module (scripts/livekit_server.sh)
# and run with --dev (key "devkey", secret "secret"). When ORCH_LIVEKIT_URL names another
# server, none is started. When it cannot be built or started, the reason is printed and the
# rest runs anyway: text to speech works, conversations answer 503.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p .run

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# -- the page ------------------------------------------------------------------------------
page_note="open http://127.0.0.1:8080/ in a browser"
if ! scripts/build_web.sh; then
  page_note="the page's script could not be built (see above): http://127.0.0.1:8080/ says how to build it"
fi

# -- LiveKit -------------------------------------------------------------------------------
livekit_note=""
answers() {
  "$PY" - "$1" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # an HTTP answer of any status: something serves there
except Exception:
    sys.exit(1)
PY
}
start_livekit() {
  if [ -n "${ORCH_LIVEKIT_URL:-}" ]; then
    livekit_note="LiveKit: using ORCH_LIVEKIT_URL=$ORCH_LIVEKIT_URL (none started here)"
    return
  fi
  if answers http://127.0.0.1:7880/; then
    livekit_note="LiveKit: something already serves 127.0.0.1:7880; using it (none started here)"
    return
  fi
  local bin
  echo "LiveKit: building or finding the development server (the first build takes minutes)..." >&2
  if ! bin="$(scripts/livekit_server.sh 2> >(tee .run/livekit-build.log >&2))"; then
    livekit_note="LiveKit: NOT started, its build failed (.run/livekit-build.log): conversations will answer 503"
    return
  fi
  # Loopback only: signalling on 7880, ICE over TCP on 7881 and UDP on 7882.
  cat > .run/livekit.yaml <<'YAML'
port: 7880
bind_addresses: [127.0.0.1]
rtc:
  tcp_port: 7881
  udp_port: 7882
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
  ips:
    includes: [127.0.0.1/32]
keys:
  devkey: secret
YAML
  "$bin" --dev --config .run/livekit.yaml --bind 127.0.0.1 > .run/livekit.log 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    if answers http://127.0.0.1:7880/; then
      pids+=("$pid")
      livekit_note="LiveKit (development server) on ws://127.0.0.1:7880"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  livekit_note="LiveKit: NOT started, it exited or did not answer (.run/livekit.log): conversations will answer 503"
}
start_livekit
echo "$livekit_note" >&2

# -- worker and orchestrator -------------------------------------------------------------
"$PY" -m tts_worker > >(tee .run/worker.log >&2) 2>&1 &
core=($!)
"$PY" -m orchestrator.cli > >(tee .run/orchestrator.log >&2) 2>&1 &
core+=($!)
pids+=("${core[@]}")

for _ in $(seq 1 600); do
  if "$PY" - <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen("http://127.0.0.1:8081/readyz", timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process exited during start-up; see .run/*.log" >&2; exit 1; }
  done
  sleep 0.1
done

cat <<MSG

Ready: $page_note
Orchestrator on http://127.0.0.1:8080 (ops: http://127.0.0.1:8081/readyz), Piper worker on 127.0.0.1:7001.
$livekit_note
Or paste this to get a WAV file:

  curl -sS -X POST http://127.0.0.1:8080/synthesize -H 'Content-Type: application/json' \\
       -d '{"text": "Hello! This is the voice orchestrator speaking."}' -o hello.wav

Ctrl-C stops everything.
MSG
# Until the worker or the orchestrator stops (LiveKit stopping alone leaves them serving).
wait -n "${core[@]}"
