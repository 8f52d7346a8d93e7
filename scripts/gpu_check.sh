#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py) on a machine that cannot reach a package index.
#
#   scripts/gpu_check.sh wheels   here, with pip and the index: download into .whl/ the wheels such a
#                                 machine lacks (Python 3.12, x86-64 Linux; about 52 MB), for a machine
#                                 that has torch, transformers, accelerate and peft but not the rest
#   scripts/gpu_check.sh [--cpu]  there: install .whl/*.whl (if any) into a scratch folder, then run the
#                                 check from this checkout; one line per check, exit 1 if any failed
#
# Versions: trl 1.15 and datasets 4 are the newest that accept transformers 5.17 (which Unsloth pins);
# bitsandbytes 0.50 for 8-bit, xgrammar 0.2.9 for --constrained, fastapi and uvicorn for serve.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
  trl==1.15.0 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19
  bitsandbytes==0.50.2 xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2
  jsonschema==4.26.0 referencing==0.37.0 rpds-py==2026.9.1 jsonschema-specifications==2025.9.1 ijson==3.6.0
  fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
)

if [ "${1:-}" = wheels ]; then
  mkdir -p .whl
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64; do
    platforms+=(--platform "$p")
  done
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
  du -sh .whl
  exit 0
fi

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu-check-site .whl/*.whl
  export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec python3 scripts/gpu_check.py "$@"
