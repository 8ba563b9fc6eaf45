#!/usr/bin/env bash
# `make run`: one Piper worker (127.0.0.1:7001) and the orchestrator (127.0.0.1:8080, ops
# 8081) in the embedded single-node mode: no Redis, no containers. Ctrl-C stops both.
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

"$PY" -m tts_worker > >(tee .run/worker.log >&2) 2>&1 &
pids+=($!)
"$PY" -m orchestrator.cli > >(tee .run/orchestrator.log >&2) 2>&1 &
pids+=($!)

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

cat <<'MSG'

Ready. Orchestrator on http://127.0.0.1:8080 (ops: http://127.0.0.1:8081/readyz), Piper worker on 127.0.0.1:7001.
Paste this to get a WAV file:

  curl -sS -X POST http://127.0.0.1:8080/synthesize -H 'Content-Type: application/json' \
       -d '{"text": "Hello! This is the voice orchestrator speaking."}' -o hello.wav

Ctrl-C stops both processes.
MSG
wait -n "${pids[@]}"
