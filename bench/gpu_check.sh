#!/bin/sh
# The prepared GPU checks (setup and exit status: bench/gpu_check.py's docstring); figures -> $OUT/gpu_check.json.
exec "${PYTHON:-$(dirname "$0")/../.venv/bin/python}" "$(dirname "$0")/gpu_check.py" "$@"
