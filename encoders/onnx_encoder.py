"""`OnnxEncoder`: an exported BERT-family model run by ONNX Runtime (one session, opened once)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders.batching import l2_normalise, length_buckets, pad_batch
from encoders.device import cuda_available
from encoders.graph import SESSION_DISABLED_OPTIMIZERS
from encoders.metadata import ModelMetadata, sha256_file

log = logging.getLogger(__name__)
DEFAULT_OUT_DIR = Path(".data/models/all-MiniLM-L6-v2")
MODEL_ENV = "SLATESTREAM_ONNX_MODEL"


def default_model_path() -> Path:
    """Where `slatestream encoders export` writes by default: $SLATESTREAM_ONNX_MODEL or
    .data/models/all-MiniLM-L6-v2/model.onnx (relative to the working directory)."""
    return Path(os.environ.get(MODEL_ENV, str(DEFAULT_OUT_DIR / "model.onnx")))


CUDA_PROVIDER = "CUDAExecutionProvider"


def ort_has_cuda() -> bool:
    """Whether the installed onnxruntime offers the CUDA execution provider (onnxruntime-gpu)."""
    import onnxruntime as ort

    return CUDA_PROVIDER in ort.get_available_providers()


def resolve_providers(providers: str | Sequence[str]) -> list[str]:
    """"auto" -> CUDA then CPU when a usable GPU exists AND onnxruntime has its CUDA provider,
    else CPU; "cpu"; "cuda" (RuntimeError naming what is missing: a GPU, or onnxruntime-gpu);
    or an explicit list."""
    if isinstance(providers, str):
        if providers == "auto":
            return [CUDA_PROVIDER, "CPUExecutionProvider"] if cuda_available() and ort_has_cuda() \
                else ["CPUExecutionProvider"]
        if providers == "cpu":
            return ["CPUExecutionProvider"]
        if providers == "cuda":
            if not cuda_available():
                raise RuntimeError("device cuda: no usable CUDA GPU here (no driver or no device); "
                                   "use --device cpu or auto")
            if not ort_has_cuda():
                raise RuntimeError("device cuda: this onnxruntime has no CUDAExecutionProvider (install "
                                   "onnxruntime-gpu in place of onnxruntime); use --device cpu or auto")
            return [CUDA_PROVIDER, "CPUExecutionProvider"]
        raise ValueError(f"providers must be 'auto', 'cpu', 'cuda' or a list, got {providers!r}")
    return list(providers)


def open_session(
    path: Path, providers: Sequence[str], intra_op_threads: int | None = None, spin: bool = False,
    optimized_model_path: Path | None = None,
) -> Any:
    """An ORT InferenceSession with every graph optimization except SESSION_DISABLED_OPTIMIZERS.

    Args:
        path: the .onnx file.
        providers: ORT provider names, in order of preference.
        intra_op_threads: threads per run (None: ORT's default, all cores).
        spin: let idle intra-op threads busy-wait between ops.
        optimized_model_path: also write the graph the session runs there (for inspection).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers),
                                disabled_optimizers=list(SESSION_DISABLED_OPTIMIZERS))


class OnnxEncoder:
    """Text -> float32[n, D] unit embeddings with an exported model (see encoders.export).

    Args:
        model_path: the .onnx file; its metadata JSON must sit beside it and the tokenizer
            files in the same directory (or in `tokenizer_dir`).
        providers: "auto" (CUDA only when a usable GPU is present), "cpu", "cuda", or an
            explicit ONNX Runtime provider list.
        intra_op_threads: ORT intra-op threads (None: ORT's default, all cores).
        batch_size: texts per session run; texts are sorted by token length into batches,
            each padded to its own longest text; output order is the input order. 16 pads
            little (256 item texts: 5,312 tokens run for 4,833 real, 6,976 with 64) and the
            per-run overhead stays small: +40% items/s over 64 on one core (docs/encoders.md).
        verify_checksum: recompute the file's sha256 and compare it with the metadata.
        tokenizer_dir: where tokenizer.json lives (default: the model's directory); it is run
            with the `tokenizers` package (the Rust fast tokenizer AutoTokenizer wraps), so
            serving never imports torch.
        spin: let ORT's intra-op threads busy-wait between ops. Off by default: on a shared
            or small machine spinning threads starve each other (measured 2x slower on 2
            busy cores); turn on for a dedicated host.
        parallel_batches: batches run at once from a thread pool (ORT releases the GIL), each
            on `intra_op_threads` threads; e.g. 2 x 1 on two cores instead of 1 x 2, which
            skips the per-op hand-off between intra-op threads. A call with one batch runs
            it alone.

    The session runs with every ORT graph optimization except SESSION_DISABLED_OPTIMIZERS
    (`open_session`).

    fingerprint = "onnx-<sha256[:16]>-<pooling>-L<max_length>", so a different file, pooling
    or truncation length never shares cached embeddings.
    """

    def __init__(
        self,
        model_path: str | Path,
        providers: str | Sequence[str] = "auto",
        intra_op_threads: int | None = None,
        batch_size: int = 16,
        verify_checksum: bool = True,
        tokenizer_dir: str | Path | None = None,
        spin: bool = False,
        parallel_batches: int = 1,
    ) -> None:
        from encoders.tokenizer import TokenizerJson

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"model_path {path} does not exist")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if parallel_batches < 1:
            raise ValueError(f"parallel_batches must be >= 1, got {parallel_batches}")
        self.metadata = ModelMetadata.read(path)
        if verify_checksum and (actual := sha256_file(path)) != self.metadata.sha256:
            raise ValueError(f"model_path {path}: sha256 {actual[:16]}... != metadata {self.metadata.sha256[:16]}...")
        self.model_path = path
        variant = self.metadata.variant
        self.name = self.metadata.name if variant == "fp32" else f"{self.metadata.name}-{variant}"
        self.dim = self.metadata.dim
        self.max_length = self.metadata.max_length
        self.batch_size = batch_size
        self.fingerprint = f"onnx-{self.metadata.sha256[:16]}-{self.metadata.pooling.mode}-L{self.max_length}"
        wanted = resolve_providers(providers)
        self.session: Any = open_session(path, wanted, intra_op_threads, spin)
        self.providers: list[str] = list(self.session.get_providers())
        if wanted[0] != self.providers[0]:
            if providers == "cuda":  # asked for explicitly: never a silent CPU run
                raise RuntimeError(f"device cuda: ONNX Runtime could not start {wanted[0]} (it fell back to "
                                   f"{self.providers[0]}; see its log above): use --device cpu or auto")
            log.warning("ONNX Runtime fell back from %s to %s", wanted[0], self.providers[0])
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.tokenizer = TokenizerJson(
            Path(tokenizer_dir) if tokenizer_dir else path.parent, self.max_length, self.metadata.pad_token_id
        )
        self._pad_id = self.metadata.pad_token_id
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.parallel_batches = parallel_batches
        self._pool: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(parallel_batches, thread_name_prefix="onnx-batch") if parallel_batches > 1 else None
        )

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_length (special tokens included)."""
        return self.tokenizer(texts)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts: float32[len(texts), dim], unit L2 rows, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return out
        ids = self.tokenize(texts)
        batches = length_buckets([len(i) for i in ids], self.batch_size)

        def run(positions: npt.NDArray[np.int64]) -> None:
            input_ids, mask = pad_batch(ids, positions, self._pad_id)
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            (emb,) = self.session.run([self.metadata.output_name], feeds)
            out[positions] = emb

        if self._pool is None or len(batches) == 1:
            for positions in batches:
                run(positions)
        else:  # ORT releases the GIL while it runs; batches are longest first (LPT order)
            list(self._pool.map(run, batches))
        return l2_normalise(out)
