#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine with no credentials:
# the shipped sample data, the embedded SmolLM2 as the SLM, and - since no hosted model can be reached
# here - a local stand-in for the hosted model: `slm-swap serve` on the same embedded model, called
# through exactly the same OpenAI-compatible client code as any hosted endpoint.
set -euo pipefail
BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
WORK="${1:-demo}"
PORT="${DEMO_PORT:-8765}"
mkdir -p "$WORK" && cd "$WORK"

export LANGFUSE_DISABLED=1
echo "LANGFUSE_DISABLED=1: tracing is off for this demo (set LANGFUSE_* and unset this to trace)"

"$BIN/slm-swap" models pull
"$BIN/slm-swap" prepare

if curl -fs "http://127.0.0.1:$PORT/health" > /dev/null 2>&1; then
  echo "port $PORT is already in use (another server?); set DEMO_PORT to a free port" >&2
  exit 2
fi
echo "starting the local stand-in for the hosted model: slm-swap serve on 127.0.0.1:$PORT (embedded SmolLM2)"
# A CPU model answers a batch of eight in a minute or two: the client waits accordingly (--timeout).
"$BIN/slm-swap" serve --port "$PORT" > serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -fs "http://127.0.0.1:$PORT/health" > /dev/null && break
  sleep 1
done

for track in structured toolcall; do
  "$BIN/slm-swap" eval --track "$track" --model-kind openai --base-url "http://127.0.0.1:$PORT/v1" \
    --model SmolLM2-135M-Instruct --timeout 900 --out "05_eval/${track}_hosted_test.json"
  "$BIN/slm-swap" eval --track "$track" --model-kind slm
  "$BIN/slm-swap" compare --track "$track" --azure "05_eval/${track}_hosted_test.json" \
    --slm "05_eval/${track}_slm_test.json" --delta 0.01 || [ $? -eq 10 ]
done
echo "the hosted side was a local stand-in (slm-swap serve on the embedded SmolLM2), not a hosted LLM"
