"""What each ONNX Runtime choice gives the MiniLM encoder on this CPU (one thread, CPU time).

    OMP_NUM_THREADS=1 taskset -c 0 python bench/encoders_ablation.py [--n 256] [--batch-size 16]
                                                                     [--rounds 7] [--seed 0]

Exports all-MiniLM-L6-v2 twice into a temporary directory (the bare graph, and with
`fuse_attention=True`; int8 variants of both) and quantizes the bare graph as the export did
before smoothing (7-bit weights, not smoothed). Each row runs the benchmark's texts
(bench/encoders_throughput.py, the same length-bucketed batches) through one session with
one intra-op thread, or through PyTorch eager with one thread, in interleaved rounds; the
figure is texts per second of the calling thread's CPU time (median of rounds), which other
jobs preempting the core do not change (sharing its caches or SMT sibling still does).
"SkipLN fusion on" is ORT's default session; the encoder's session turns it off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from encoders_throughput import make_texts

from encoders.batching import length_buckets, pad_batch
from encoders.graph import SESSION_DISABLED_OPTIMIZERS

Batches = list[dict[str, np.ndarray]]


def ort_runner(path: Path, batches: Batches, skip_layer_norm_fusion: bool) -> Callable[[], None]:
    """Run every batch through one single-threaded session of `path`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    disabled = [] if skip_layer_norm_fusion else list(SESSION_DISABLED_OPTIMIZERS)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=disabled)
    names = {i.name for i in session.get_inputs()}
    feeds = [{k: v for k, v in batch.items() if k in names} for batch in batches]

    def run() -> None:
        for feed in feeds:
            session.run(None, feed)
    return run


def eager_runner(batches: Batches) -> Callable[[], None]:
    """Run every batch through the PyTorch module the export traces (one thread)."""
    import torch

    from encoders.models import default_model_dir
    from encoders.torch_model import load_pooled_model

    torch.set_num_threads(1)
    model = load_pooled_model(default_model_dir())[0]

    def run() -> None:
        with torch.inference_mode():
            for b in batches:
                model(torch.from_numpy(b["input_ids"]), torch.from_numpy(b["attention_mask"]),
                      torch.from_numpy(b["token_type_ids"]))
    return run


def make_models(tmp: Path) -> dict[str, Path]:
    """Bare and fused exports (with int8) and the earlier int8 (bare, 7-bit, not smoothed)."""
    from encoders.export import calibration_feeds, export_onnx
    from encoders.quantize import quantize_int8

    bare = export_onnx(None, tmp / "bare", int8=True)
    fused = export_onnx(None, tmp / "fused", int8=True, fuse_attention=True)
    earlier = tmp / "bare" / "model.int8-earlier.onnx"
    quantize_int8(bare.onnx_path, earlier, calibration_feeds(bare.out_dir, bare.metadata), weight_bits=7,
                  smooth_alpha=0.0)
    return {"fp32 bare": bare.onnx_path, "fp32 fused attention": fused.onnx_path,
            "int8 earlier (bare, 7-bit, not smoothed)": earlier, "int8 (bare, smoothed)": bare.variants["int8"],
            "int8 fused attention (smoothed)": fused.variants["int8"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from encoders.tokenizer import TokenizerJson

    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(Path(tmp))
        ids = TokenizerJson(Path(tmp) / "bare", 256, 0)(make_texts(args.n, args.seed))
        batches = []
        for positions in length_buckets([len(i) for i in ids], args.batch_size):
            input_ids, mask = pad_batch(ids, positions, 0)
            batches.append({"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)})
        runners = {"PyTorch eager fp32": eager_runner(batches)}
        for name, path in models.items():
            runners[f"ORT {name}, SkipLN fusion off"] = ort_runner(path, batches, False)
            if "fused" not in name:
                runners[f"ORT {name}, SkipLN fusion on"] = ort_runner(path, batches, True)
        seconds: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():
            run()
        for _ in range(args.rounds):
            for name, run in runners.items():
                start = time.thread_time()
                run()
                seconds[name].append(time.thread_time() - start)
    tokens = sum(int(b["input_ids"].size) for b in batches)
    print(f"{args.n} texts in {len(batches)} batches of <= {args.batch_size} ({tokens} tokens with padding), "
          f"1 thread, {args.rounds} rounds; load average {os.getloadavg()[0]:.2f}")
    baseline = args.n / statistics.median(seconds["PyTorch eager fp32"])
    print(f"{'backend':64s} {'items/CPU-s':>11s} {'vs eager':>9s}")
    for name, times in seconds.items():
        rate = args.n / statistics.median(times)
        print(f"{name:64s} {rate:11.0f} {rate / baseline:8.2f}x")


if __name__ == "__main__":
    main()
