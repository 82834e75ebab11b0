"""Weight bits chosen from the CPU's int8 instructions (no export, no onnxruntime session)."""

import pytest

from encoders.quantize import cpu_flags, int8_weight_bits


@pytest.mark.parametrize(
    ("flags", "machine", "bits"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", 8),
        ({"avx2", "avx_vnni"}, "x86_64", 8),
        ({"avx2", "amx_int8"}, "AMD64", 8),
        ({"avx2", "avx512f", "avx512bw"}, "x86_64", 7),  # AVX-512 without VNNI: int16 pairs saturate
        ({"avx2"}, "x86_64", 7),
        (set(), "x86_64", 7),  # unknown flags on x86: the safe choice
        (set(), "aarch64", 8),
        (set(), "arm64", 8),
    ],
)
def test_int8_weight_bits_follow_cpu_flags(flags, machine, bits) -> None:
    assert int8_weight_bits(frozenset(flags), machine) == bits


def test_cpu_flags_read_the_flags_line(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == frozenset({"fpu", "sse2", "avx2", "avx512_vnni"})
    info.write_text("processor\t: 0\n")
    assert cpu_flags(info) == frozenset()
    assert cpu_flags(tmp_path / "missing") == frozenset()
