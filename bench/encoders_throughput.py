"""Encoder throughput on CPU: PyTorch eager vs ONNX Runtime fp32 vs ORT int8, same texts.

    python bench/encoders_throughput.py [--n 256] [--batch-size 64] [--threads N]
                                        [--onnx-dir DIR] [--repeats 2] [--seed 0]

Texts: synthetic item descriptions (4-40 words, seeded). Every backend sorts texts by token
length into batches padded to their own longest text ("bucketed"); one extra row runs ORT
fp32 on batches in input order (padded to the longest of a random batch) to show what
bucketing buys. Baseline in the same process: PyTorch eager (ratios are vs it). The model is
exported (fp32 + int8) into a temporary directory unless --onnx-dir points at an export.
Needs no network; on a GPU machine the figures stay CPU figures (plus an ORT CUDA row).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from encoders.device import cuda_available
from encoders.texts import AGREEMENT_TEXTS


def make_texts(n: int, seed: int) -> list[str]:
    """n texts of 4-40 words drawn from the agreement texts' vocabulary."""
    rng = np.random.default_rng(seed)
    words = sorted({w for text in AGREEMENT_TEXTS for w in text.split()})
    lengths = np.clip(rng.lognormal(mean=2.3, sigma=0.6, size=n).astype(int), 4, 40)
    return [" ".join(rng.choice(words, size=int(k))) for k in lengths]


def timed(encode: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], repeats: int) -> float:
    """Best-of-repeats items/s (after a warm-up batch)."""
    encode(texts[:64])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        encode(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--onnx-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from encoders.export import export_onnx
    from encoders.models import default_model_dir
    from encoders.onnx_encoder import OnnxEncoder
    from encoders.torch_model import TorchEncoder

    torch.set_num_threads(args.threads)
    texts = make_texts(args.n, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = args.onnx_dir
        if onnx_dir is None or not (onnx_dir / "model.int8.onnx").is_file():
            onnx_dir = Path(tmp)
            start = time.perf_counter()
            export_onnx(None, onnx_dir, int8=True)
            print(f"exported fp32 + int8 in {time.perf_counter() - start:.1f} s")
        eager = TorchEncoder(default_model_dir(), batch_size=args.batch_size)
        fp32 = OnnxEncoder(onnx_dir / "model.onnx", providers="cpu", intra_op_threads=args.threads,
                           batch_size=args.batch_size)
        int8 = OnnxEncoder(onnx_dir / "model.int8.onnx", providers="cpu", intra_op_threads=args.threads,
                           batch_size=args.batch_size)
        lengths = np.array([len(ids) for ids in fp32.tokenize(texts)])

        def unbucketed(batch: Sequence[str]) -> np.ndarray:
            step = args.batch_size
            return np.vstack([fp32.encode(batch[i : i + step]) for i in range(0, len(batch), step)])

        rows: list[tuple[str, float]] = [
            ("PyTorch eager fp32 (bucketed)", timed(eager.encode, texts, args.repeats)),
            ("ORT fp32 (bucketed)", timed(fp32.encode, texts, args.repeats)),
            ("ORT int8 per-channel (bucketed)", timed(int8.encode, texts, args.repeats)),
            ("ORT fp32 (input order, no bucketing)", timed(unbucketed, texts, args.repeats)),
        ]
        if cuda_available():
            gpu = OnnxEncoder(onnx_dir / "model.onnx", providers="cuda", batch_size=args.batch_size)
            rows.append((f"ORT fp32 on {gpu.providers[0]}", timed(gpu.encode, texts, args.repeats)))
        agreement = float(np.sum(fp32.encode(texts) * int8.encode(texts), axis=1).min())

    baseline = rows[0][1]
    print(f"\ndevice: CPU, {args.threads} threads (torch {torch.__version__}); {args.n} texts, "
          f"tokens/text mean {lengths.mean():.1f} max {lengths.max()}, batch {args.batch_size}")
    print(f"{'backend':40s} {'items/s':>10s} {'vs eager':>9s}")
    for name, rate in rows:
        print(f"{name:40s} {rate:10.0f} {rate / baseline:8.2f}x")
    print(f"int8 vs fp32 min cosine on these texts: {agreement:.4f}")
    print(f"command: python bench/encoders_throughput.py --n {args.n} --batch-size {args.batch_size} "
          f"--threads {args.threads} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
