#!/usr/bin/env bash
# The spec's sequential strategy: each track in turn on all four GPUs.
# Logs: logs/train_structured_4gpu.log, logs/train_toolcall_4gpu.log
exec slm-swap launch --strategy sequential "$@"
