"""Encoder throughput on CPU: PyTorch eager vs ONNX Runtime fp32 vs ORT int8, same texts.

    python bench/encoders_throughput.py [--n 256] [--batch-size 16] [--threads 2] [--onnx-dir DIR]
                                        [--repeats 7] [--seed 0] [--parallel-batches N]

Texts: synthetic item descriptions (4-40 words, seeded). Every backend sorts texts by token
length into batches padded to their own longest text ("bucketed": the same batches for all);
one extra row runs ORT fp32 on batches in input order to show what bucketing buys. The
backends are timed in interleaved rounds (each round encodes all texts once with every
backend, the order rotating), so a shared machine's load falls on all of them alike; the
figures are medians over rounds and each ratio is the median of the per-round ratios to
PyTorch eager, the baseline. items/CPU-s divides by the process's CPU time instead (all its
threads, busy-waiting included): what each backend costs, whatever else runs on the
machine. The model is exported (fp32 + int8) into a temporary directory unless --onnx-dir
points at an export. OMP_WAIT_POLICY defaults to PASSIVE (torch's threads do not spin,
as ORT's do not). Needs no network; on a GPU machine the figures stay CPU figures (plus
an ORT CUDA row).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Neither backend busy-waits between ops (OnnxEncoder's default spin=False; this for torch's
# OpenMP pool, read when torch loads): with waiting threads spinning, eager on 2 threads of a
# busy 2-core machine fell to 13 items/s (30 per CPU-second), 67 without.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from encoders.device import cuda_available
from encoders.texts import AGREEMENT_TEXTS

Encode = Callable[[Sequence[str]], np.ndarray]


def make_texts(n: int, seed: int) -> list[str]:
    """n texts of 4-40 words drawn from the agreement texts' vocabulary."""
    rng = np.random.default_rng(seed)
    words = sorted({w for text in AGREEMENT_TEXTS for w in text.split()})
    lengths = np.clip(rng.lognormal(mean=2.3, sigma=0.6, size=n).astype(int), 4, 40)
    return [" ".join(rng.choice(words, size=int(k))) for k in lengths]


def interleaved(
    backends: dict[str, Encode], texts: Sequence[str], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(wall seconds, process CPU seconds) per encode of all texts, per backend and round.

    Each backend first encodes 64 texts once (warm-up). CPU seconds count every thread of the
    process, busy-waiting included, and not the time other jobs held the cores.
    """
    for encode in backends.values():
        encode(texts[:64])
    names = list(backends)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            backends[name](texts)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def cpu_description() -> str:
    """CPU model and whether it has VNNI int8 instructions (Linux; 'unknown' elsewhere)."""
    from encoders.quantize import VNNI_FLAGS, cpu_flags

    model = "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    vnni = sorted(cpu_flags() & VNNI_FLAGS)
    return f"{model}, {os.cpu_count()} CPUs, VNNI: {', '.join(vnni) or 'no'}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--onnx-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel-batches", type=int, default=1,
                        help="ORT batches run at once, each on threads / parallel-batches intra-op threads")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    from encoders.export import export_onnx
    from encoders.models import default_model_dir
    from encoders.onnx_encoder import OnnxEncoder
    from encoders.torch_model import TorchEncoder

    torch.set_num_threads(args.threads)
    texts = make_texts(args.n, args.seed)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = args.onnx_dir
        if onnx_dir is None or not (onnx_dir / "model.int8.onnx").is_file():
            onnx_dir = Path(tmp)
            start = time.perf_counter()
            export_onnx(None, onnx_dir, int8=True)
            print(f"exported fp32 + int8 in {time.perf_counter() - start:.1f} s")
        parallel = args.parallel_batches
        ort_options = {"providers": "cpu", "batch_size": args.batch_size, "parallel_batches": parallel,
                       "intra_op_threads": max(1, args.threads // parallel)}
        eager = TorchEncoder(default_model_dir(), batch_size=args.batch_size)
        fp32 = OnnxEncoder(onnx_dir / "model.onnx", **ort_options)
        int8 = OnnxEncoder(onnx_dir / "model.int8.onnx", **ort_options)
        lengths = np.array([len(ids) for ids in fp32.tokenize(texts)])

        def unbucketed(batch: Sequence[str]) -> np.ndarray:
            step = args.batch_size
            return np.vstack([fp32.encode(batch[i : i + step]) for i in range(0, len(batch), step)])

        backends: dict[str, Encode] = {
            "PyTorch eager fp32": eager.encode,
            "ORT fp32": fp32.encode,
            f"ORT int8 ({int8.metadata.extra.get('int8', {}).get('weight_bits', '?')}-bit weights)": int8.encode,
            "ORT fp32, input order (no bucketing)": unbucketed,
        }
        if cuda_available():
            gpu = OnnxEncoder(onnx_dir / "model.onnx", providers="cuda", batch_size=args.batch_size)
            backends[f"ORT fp32 on {gpu.providers[0]}"] = gpu.encode
        seconds, cpu_seconds = interleaved(backends, texts, args.repeats)
        cosines = np.sum(fp32.encode(texts) * int8.encode(texts), axis=1, dtype=np.float64)
        settings = f"{parallel} batch(es) at once x {ort_options['intra_op_threads']} intra-op thread(s)"

    baseline = seconds["PyTorch eager fp32"]
    print(f"\ndevice: {cpu_description()}; torch {torch.__version__} on {args.threads} threads "
          f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), ORT {settings}")
    print(f"{args.n} texts, tokens/text mean {lengths.mean():.1f} max {lengths.max()}, batch {args.batch_size}, "
          f"all bucketed unless said; {args.repeats} interleaved rounds")
    print(f"{'backend':42s} {'items/s':>8s} {'(min-max)':>12s} {'vs eager':>9s} {'items/CPU-s':>12s}")
    for name, times in seconds.items():
        ratio = statistics.median(b / t for b, t in zip(baseline, times, strict=True))
        print(f"{name:42s} {args.n / statistics.median(times):8.0f} "
              f"{f'({args.n / max(times):.0f}-{args.n / min(times):.0f})':>12s} {ratio:8.2f}x "
              f"{args.n / statistics.median(cpu_seconds[name]):12.0f}")
    print(f"int8 vs fp32 cosine on these texts: min {cosines.min():.4f}, mean {cosines.mean():.4f}")
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"command: python bench/encoders_throughput.py --n {args.n} --batch-size {args.batch_size} "
          f"--threads {args.threads} --repeats {args.repeats} --parallel-batches {parallel}")


if __name__ == "__main__":
    main()
