"""Scoring throughput: top-k over 100k / 1M items at d = 64 / 384, numpy vs torch (vs CUDA).

    python bench/scoring_throughput.py [--sizes 100000,1000000] [--dims 64,384] [--batch 32]
                                       [--k 100] [--repeats 3] [--backends numpy,torch]

Each figure is one `Scorer.topk(queries[batch, d], k)` call over the whole catalogue (fp32
matrix unless the backend name ends in -fp16): latency per batch (median of --repeats after
a warm-up) and scores/s = batch * n / latency. Baseline in the same process: the numpy CPU
scorer (ratios are vs it). When a CUDA GPU is usable, cuda and cuda-fp16 rows are added,
with the fraction of the memory-bandwidth bound (one read of the matrix per batch at
--peak-tbs, H100 ~3.35 TB/s; 1M x 384 fp16 = 768 MB -> ~0.23 ms). Figures name their device.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoders.device import cuda_available
from encoders.scoring import NumpyScorer, Scorer


def build(name: str) -> Scorer:
    if name == "numpy":
        return NumpyScorer()
    from encoders.scoring_torch import TorchScorer

    device = "cuda" if name.startswith("cuda") else "cpu"
    return TorchScorer(device, fp16=name.endswith("-fp16"))


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    m = rng.standard_normal((n, d), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dims", default="64,384")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="numpy,torch")
    parser.add_argument("--peak-tbs", type=float, default=3.35, help="GPU memory bandwidth, TB/s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if cuda_available():
        backends += [b for b in ("cuda", "cuda-fp16") if b not in backends]
    if backends[0] != "numpy":
        backends.insert(0, "numpy")
    rng = np.random.default_rng(args.seed)

    print(f"{'n':>9s} {'d':>4s} {'backend':10s} {'device':8s} {'ms/batch':>9s} {'Mscores/s':>10s} "
          f"{'vs numpy':>9s} {'of BW bound':>11s}")
    for n in (int(s) for s in args.sizes.split(",")):
        for d in (int(s) for s in args.dims.split(",")):
            matrix = unit_rows(rng, n, d)
            queries = unit_rows(rng, args.batch, d)
            base_ms = None
            for name in backends:
                scorer = build(name)
                scorer.set_matrix(matrix)
                scorer.topk(queries, args.k)
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    scorer.topk(queries, args.k)  # returns numpy: the device work is finished
                    times.append(time.perf_counter() - start)
                ms = float(np.median(times)) * 1e3
                base_ms = base_ms or ms
                bound = ""
                if scorer.device.startswith("cuda"):
                    nbytes = n * d * (2 if name.endswith("fp16") else 4)
                    bound = f"{nbytes / (args.peak_tbs * 1e12) / (ms / 1e3):10.1%}"
                print(f"{n:9d} {d:4d} {name:10s} {scorer.device:8s} {ms:9.2f} "
                      f"{args.batch * n / ms / 1e3:10.1f} {base_ms / ms:8.2f}x {bound:>11s}")
                del scorer
    print(f"batch {args.batch} queries, top-{args.k}; command: python bench/scoring_throughput.py "
          f"--sizes {args.sizes} --dims {args.dims} --batch {args.batch} --k {args.k} --repeats {args.repeats} "
          f"--backends {args.backends}")


if __name__ == "__main__":
    main()
