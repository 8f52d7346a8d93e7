#!/usr/bin/env bash
# The spec's parallel strategy: structured on GPUs 0,1 and toolcall on GPUs 2,3 at once.
# Logs: logs/train_structured_2gpu.log, logs/train_toolcall_2gpu.log
exec slm-swap launch --strategy parallel "$@"
