"""The exported BERT model, on first use: exported once into a per-user cache, reused after.

    path = exported_model()                  # fp32 .onnx of the bundled all-MiniLM-L6-v2
    path = exported_model(int8=True)         # its int8 variant (exported with it when asked)

The cache directory is `$SLATESTREAM_CACHE_DIR`, else `$XDG_CACHE_HOME/slatestream`, else
`~/.cache/slatestream` (never the working directory). Each export lives in
`models/<model name>-<checksum>/`, the checksum a sha256 over the source model's files (weights,
configuration, tokenizer) and the export's settings, so a new model or a new export recipe never
reuses an old file, and every later start (another process, another directory) finds it. An
export is written into a temporary directory beside its final place and renamed into it, under a
file lock, so concurrent first starts export once and never see half a model.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from encoders.models import default_model_dir, model_name

CACHE_ENV = "SLATESTREAM_CACHE_DIR"
EXPORT_RECIPE = "onnx-opset17-meanpool-l2-maxlen256-v2-int8-smoothed"
"""Changes whenever encoders.export changes what it writes (part of the cache key)."""
MAX_LENGTH = 256
Progress = Callable[[str], None]


def cache_root() -> Path:
    """$SLATESTREAM_CACHE_DIR, else $XDG_CACHE_HOME/slatestream, else ~/.cache/slatestream."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "slatestream"


def source_checksum(model_dir: Path) -> str:
    """sha256 (hex) over the relative paths and bytes of every file of the model directory and the
    export recipe."""
    digest = hashlib.sha256(EXPORT_RECIPE.encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_cache_dir(model_dir: Path | None = None, root: Path | None = None) -> Path:
    """Where the export of `model_dir` (default: the bundled model) lives in the cache."""
    source = model_dir or default_model_dir()
    return (root or cache_root()) / "models" / f"{model_name(source)}-{source_checksum(source)[:16]}"


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def exported_model(int8: bool = False, model_dir: Path | None = None, root: Path | None = None,
                   progress: Progress | None = None) -> Path:
    """The exported model's .onnx file (fp32, or its int8 variant), exporting it first when the
    cache lacks it; `progress(message)` hears what happens (e.g. a command line's spinner)."""
    source = model_dir or default_model_dir()
    target = model_cache_dir(source, root)
    wanted = target / ("model.int8.onnx" if int8 else "model.onnx")
    if wanted.is_file() and wanted.with_suffix(".json").is_file():
        return wanted
    with _locked(target.parent):
        if wanted.is_file() and wanted.with_suffix(".json").is_file():
            return wanted  # another process exported it while this one waited
        if progress is not None:
            progress(f"exporting {model_name(source)} to ONNX{' (+ int8)' if int8 else ''} into {target} "
                     "(once; later starts reuse it)")
        from encoders.export import export_onnx

        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
        try:
            export_onnx(source, staging, MAX_LENGTH, int8=int8)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if progress is not None:
            progress(f"exported {wanted}")
    return wanted
