"""The int8 variant: smoothed LayerNorm outputs, then dynamic per-channel int8 weights.

Weight bits follow the CPU's int8 instructions: with VNNI (AVX512-VNNI, AVX-VNNI, AMX) the
u8 x s8 products accumulate straight into int32, so full 8-bit weights are safe; without it
(AVX2, AVX-512 without VNNI) ORT's kernels pair products in int16, which 8-bit weights can
saturate, so weights get 7 bits (`reduce_range`, ORT's advice for those CPUs). Measurements
and the reasons for smoothing: docs/encoders.md.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders.graph import smooth_matmul_inputs

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
SMOOTH_ALPHA = 0.7


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags Linux reports (empty when unknown, e.g. on macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def int8_weight_bits(flags: frozenset[str] | None = None, machine: str | None = None) -> int:
    """8 where int8 products cannot saturate (VNNI, or a non-x86 CPU), else 7.

    Args:
        flags: CPU flags (default: this machine's, `cpu_flags()`).
        machine: `platform.machine()` (default: this machine's).
    """
    arch = (machine if machine is not None else platform.machine()).lower()
    if arch not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return 8
    return 8 if (flags if flags is not None else cpu_flags()) & VNNI_FLAGS else 7


@dataclass(frozen=True)
class Int8Settings:
    """How an int8 variant was made (kept in its metadata's `extra["int8"]`).

    Attributes:
        weight_bits: 8, or 7 (`reduce_range`).
        smoothed_activations: LayerNorm outputs whose channel scale moved into weights.
        smooth_alpha: SmoothQuant migration strength.
        calibration_batches: batches the activation ranges were measured on.
    """

    weight_bits: int
    smoothed_activations: int
    smooth_alpha: float
    calibration_batches: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: Iterable[Mapping[str, npt.NDArray[np.int64]]],
    *,
    weight_bits: int | None = None,
    smooth_alpha: float = SMOOTH_ALPHA,
) -> Int8Settings:
    """Write the int8 variant of `fp32_path` to `out_path`.

    Args:
        fp32_path: the (optimized) fp32 graph.
        out_path: the int8 .onnx to write.
        calibration: session feeds (int64[batch, seq] each) for the activation ranges.
        weight_bits: 8 or 7; None chooses by this CPU (`int8_weight_bits`).
        smooth_alpha: SmoothQuant alpha; 0 leaves the activations as they are.

    Returns:
        The settings used.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    bits = int8_weight_bits() if weight_bits is None else weight_bits
    if bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, got {bits}")
    feeds = list(calibration)
    smoothed = out_path.with_name(out_path.stem + ".smoothed.onnx")
    try:
        count = smooth_matmul_inputs(fp32_path, smoothed, feeds, smooth_alpha) if smooth_alpha > 0 else 0
        # Fused contrib ops (Attention, EmbedLayerNormalization) defeat ONNX shape inference;
        # their outputs are float, which is what DefaultTensorType tells the quantizer.
        quantize_dynamic(str(smoothed if count else fp32_path), str(out_path), per_channel=True,
                         reduce_range=bits == 7, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        smoothed.unlink(missing_ok=True)
    return Int8Settings(weight_bits=bits, smoothed_activations=count, smooth_alpha=smooth_alpha,
                        calibration_batches=len(feeds))
