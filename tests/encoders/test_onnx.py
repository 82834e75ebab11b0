"""ONNX export and `OnnxEncoder` (marked onnx: the default model is exported once per session)."""

import json
import shutil

import numpy as np
import pytest

from encoders import onnx_encoder as onnx_encoder_module
from encoders.base import Encoder
from encoders.device import cuda_available
from encoders.export import VariantRejectedError, export_onnx
from encoders.metadata import ModelMetadata, sha256_file
from encoders.models import default_model_dir
from encoders.onnx_encoder import OnnxEncoder, open_session, ort_has_cuda, resolve_providers
from encoders.quantize import int8_weight_bits
from encoders.texts import AGREEMENT_TEXTS

pytestmark = pytest.mark.onnx
TEXTS = [*AGREEMENT_TEXTS, "", "x"]


@pytest.fixture(scope="module")
def onnx_encoder(exported) -> OnnxEncoder:
    return OnnxEncoder(exported.onnx_path, providers="cpu", batch_size=16)


def test_parity_with_pytorch(onnx_encoder) -> None:
    from encoders.torch_model import TorchEncoder

    reference = TorchEncoder(default_model_dir(), max_length=256, batch_size=16).encode(TEXTS)
    ours = onnx_encoder.encode(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert float(np.sum(ours * reference, axis=1).min()) >= 0.9999


def test_protocol_and_fingerprint(exported, onnx_encoder) -> None:
    assert isinstance(onnx_encoder, Encoder)
    assert onnx_encoder.name == "all-MiniLM-L6-v2" and onnx_encoder.dim == 384
    assert onnx_encoder.fingerprint == f"onnx-{exported.metadata.sha256[:16]}-mean-L256"
    assert onnx_encoder.providers == resolve_providers("cpu")


def test_bucketing_preserves_order_and_values(onnx_encoder) -> None:
    texts = TEXTS[:12]
    batched = onnx_encoder.encode(texts)
    single = np.vstack([onnx_encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(batched, single, atol=2e-5)
    reversed_batch = onnx_encoder.encode(texts[::-1])
    np.testing.assert_allclose(reversed_batch[::-1], batched, atol=2e-5)
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_tokenizer_json_matches_autotokenizer(onnx_encoder) -> None:
    from encoders.tokenizer import load_fast_tokenizer

    auto = load_fast_tokenizer(default_model_dir())
    expected = auto(TEXTS, truncation=True, max_length=256)["input_ids"]
    assert onnx_encoder.tokenize(TEXTS) == [list(ids) for ids in expected]
    assert max(len(ids) for ids in onnx_encoder.tokenize(TEXTS)) <= 256


def test_metadata_and_int8_variant(exported) -> None:
    meta = ModelMetadata.read(exported.onnx_path)
    assert meta == exported.metadata
    assert (meta.dim, meta.pooling.mode, meta.max_length, meta.variant) == (384, "mean", 256, "fp32")
    assert meta.sha256 == sha256_file(exported.onnx_path)
    int8 = ModelMetadata.read(exported.variants["int8"])
    assert int8.variant == "int8" and int8.base_sha256 == meta.sha256
    assert int8.sha256 == sha256_file(exported.variants["int8"])
    assert int8.min_cosine_required == 0.98 and int8.min_cosine_to_fp32 >= 0.98
    assert int8.min_cosine_to_fp32 <= int8.mean_cosine_to_fp32 <= 1.0
    assert OnnxEncoder(exported.variants["int8"], providers="cpu").fingerprint != OnnxEncoder(
        exported.onnx_path, providers="cpu").fingerprint


def op_counts(path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_default_export_is_the_bare_graph(exported) -> None:
    ops = op_counts(exported.onnx_path)
    assert ops["MatMul"] == 48 and ops["LayerNormalization"] == 13 and "Attention" not in ops
    assert "fused_operators" not in exported.metadata.extra


def test_session_leaves_add_and_layer_norm_unfused(exported, tmp_path) -> None:
    seen = tmp_path / "session.onnx"
    open_session(exported.variants["int8"], ["CPUExecutionProvider"], intra_op_threads=1, optimized_model_path=seen)
    ops = op_counts(seen)
    assert ops["LayerNormalization"] == 13 and "SkipLayerNormalization" not in ops


def test_int8_variant_smoothed_with_cpu_weight_bits(exported) -> None:
    import onnx

    settings = ModelMetadata.read(exported.variants["int8"]).extra["int8"]
    assert settings == {"weight_bits": int8_weight_bits(), "smoothed_activations": 12, "smooth_alpha": 0.7,
                        "calibration_batches": 2}
    assert op_counts(exported.variants["int8"])["MatMulInteger"] == 36  # the 6 x 6 weight products
    nodes = onnx.load(str(exported.variants["int8"])).graph.node
    assert sum(node.op_type == "Mul" and node.name.endswith("/smooth") for node in nodes) == 12


def test_smoothing_raises_int8_agreement(exported, tmp_path) -> None:
    from encoders.export import calibration_feeds, measure_agreement
    from encoders.quantize import quantize_int8

    feeds = calibration_feeds(exported.out_dir, exported.metadata)
    plain = tmp_path / "model.int8.onnx"
    shutil.copy(exported.out_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    quantize_int8(exported.onnx_path, plain, feeds, weight_bits=int8_weight_bits(), smooth_alpha=0.0)
    _, plain_mean = measure_agreement(exported.onnx_path, plain, exported.metadata, "int8")
    smoothed = ModelMetadata.read(exported.variants["int8"])
    # measured on AGREEMENT_TEXTS: mean 0.9931 without smoothing, 0.9948 with it (AVX-512 VNNI)
    assert smoothed.mean_cosine_to_fp32 >= plain_mean + 0.001


def test_parallel_batches_match_serial(exported, onnx_encoder) -> None:
    parallel = OnnxEncoder(exported.onnx_path, providers="cpu", batch_size=4, intra_op_threads=1, parallel_batches=2)
    np.testing.assert_allclose(parallel.encode(TEXTS), onnx_encoder.encode(TEXTS), atol=2e-5)
    assert parallel.encode(TEXTS[:1]).shape == (1, 384)
    with pytest.raises(ValueError, match="parallel_batches"):
        OnnxEncoder(exported.onnx_path, providers="cpu", parallel_batches=0)


def test_auto_providers_follow_gpu_presence() -> None:
    providers = resolve_providers("auto")
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == (cuda_available() and ort_has_cuda())
    with pytest.raises(ValueError, match="providers"):
        resolve_providers("tpu")


def test_cuda_without_onnxruntimes_cuda_provider_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(onnx_encoder_module, "cuda_available", lambda: True)
    monkeypatch.setattr(onnx_encoder_module, "ort_has_cuda", lambda: False)
    with pytest.raises(RuntimeError, match=r"no CUDAExecutionProvider.*onnxruntime-gpu"):
        resolve_providers("cuda")
    assert resolve_providers("auto") == ["CPUExecutionProvider"]


@pytest.mark.skipif(cuda_available(), reason="a GPU is present: the CUDA session starts")
def test_a_cuda_session_that_falls_back_to_cpu_is_an_error(exported, monkeypatch) -> None:
    """A driver-level probe may say yes while ONNX Runtime cannot start CUDA (no libraries): asked
    for explicitly, that is an error, never a silent CPU run."""
    monkeypatch.setattr(onnx_encoder_module, "cuda_available", lambda: True)
    monkeypatch.setattr(onnx_encoder_module, "ort_has_cuda", lambda: True)
    with pytest.raises(RuntimeError, match="device cuda"):
        OnnxEncoder(exported.onnx_path, providers="cuda")


def test_other_model_dir_cls_pooling_fp16_and_parity(tiny_model_dir, tmp_path) -> None:
    from encoders.torch_model import TorchEncoder

    result = export_onnx(tiny_model_dir, tmp_path / "tiny", max_length=512, fp16=True)
    meta = result.metadata
    assert (meta.dim, meta.pooling.mode, meta.max_length) == (32, "cls", 128)  # capped at max positions
    fp16 = ModelMetadata.read(result.variants["fp16"])
    assert fp16.variant == "fp16" and fp16.min_cosine_to_fp32 >= 0.98
    ours = OnnxEncoder(result.onnx_path, providers="cpu").encode(TEXTS)
    reference = TorchEncoder(tiny_model_dir, max_length=128).encode(TEXTS)
    assert float(np.sum(ours * reference, axis=1).min()) >= 0.9999


def test_smoothing_is_exact_in_fp32(tiny_model_dir, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    from encoders.export import calibration_feeds
    from encoders.graph import smooth_matmul_inputs

    result = export_onnx(tiny_model_dir, tmp_path / "tiny")
    smoothed = tmp_path / "smoothed.onnx"
    assert smooth_matmul_inputs(result.onnx_path, smoothed, calibration_feeds(result.out_dir, result.metadata)) == 4
    before = {w.name: numpy_helper.to_array(w) for w in onnx.load(str(result.onnx_path)).graph.initializer}
    after = {w.name: numpy_helper.to_array(w) for w in onnx.load(str(smoothed)).graph.initializer}
    # read by the 4 smoothed layer-norm outputs: Q, K, V of both layers and each FFN's first matmul
    assert sum(not np.array_equal(before[name], after[name]) for name in before) == 8
    shutil.copy(result.onnx_path.with_suffix(".json"), smoothed.with_suffix(".json"))
    (tmp_path / "tokenizer.json").write_bytes((result.out_dir / "tokenizer.json").read_bytes())
    ours = OnnxEncoder(smoothed, providers="cpu", verify_checksum=False).encode(TEXTS)
    np.testing.assert_allclose(ours, OnnxEncoder(result.onnx_path, providers="cpu").encode(TEXTS), atol=1e-6)


def test_fused_attention_export(tiny_model_dir, tmp_path) -> None:
    import onnx

    from encoders.torch_model import TorchEncoder

    result = export_onnx(tiny_model_dir, tmp_path, int8=True, min_cosine=0.5, fuse_attention=True)
    ops = op_counts(result.onnx_path)
    assert ops["Attention"] == 2 and ops["EmbedLayerNormalization"] == 1 and ops["LayerNormalization"] == 4
    assert "SkipLayerNormalization" not in ops and "BiasGelu" not in ops and "Softmax" not in ops
    assert result.metadata.extra["fused_operators"] == {
        "Attention": 2, "EmbedLayerNormalization": 1, "Gelu": 2, "LayerNormalization": 4}
    ours = OnnxEncoder(result.onnx_path, providers="cpu").encode(TEXTS)
    reference = TorchEncoder(tiny_model_dir, max_length=128).encode(TEXTS)
    assert float(np.sum(ours * reference, axis=1).min()) >= 0.9999
    assert op_counts(result.variants["int8"])["QAttention"] == 2
    nodes = onnx.load(str(result.variants["int8"])).graph.node
    assert sum(node.op_type == "Mul" and node.name.endswith("/smooth") for node in nodes) == 4
    assert not (tmp_path / "model.plain.onnx").exists()


def test_export_is_deterministic(tiny_model_dir, tmp_path) -> None:
    first = export_onnx(tiny_model_dir, tmp_path / "a", int8=True, min_cosine=0.5)
    second = export_onnx(tiny_model_dir, tmp_path / "b", int8=True, min_cosine=0.5)
    assert first.metadata.sha256 == second.metadata.sha256
    assert sha256_file(first.variants["int8"]) == sha256_file(second.variants["int8"])
    assert not list((tmp_path / "a").glob("*.plain.onnx")) and not list((tmp_path / "a").glob("*.smoothed.onnx"))


def test_variant_below_threshold_is_refused(tiny_model_dir, tmp_path) -> None:
    with pytest.raises(VariantRejectedError, match="min cosine"):
        export_onnx(tiny_model_dir, tmp_path, int8=True, min_cosine=1.0)
    assert (tmp_path / "model.onnx").is_file() and not (tmp_path / "model.int8.onnx").exists()


def test_checksum_mismatch_and_missing_metadata(tiny_model_dir, tmp_path) -> None:
    result = export_onnx(tiny_model_dir, tmp_path)
    data = json.loads(result.onnx_path.with_suffix(".json").read_text())
    data["sha256"] = "0" * 64
    result.onnx_path.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sha256"):
        OnnxEncoder(result.onnx_path, providers="cpu")
    moved = tmp_path / "other.onnx"
    shutil.copy(result.onnx_path, moved)
    with pytest.raises(FileNotFoundError, match="metadata"):
        OnnxEncoder(moved, providers="cpu")


def test_cli_export(tiny_model_dir, tmp_path) -> None:
    from click.testing import CliRunner

    from slatestream.export import encoders_group

    out = tmp_path / "cli"
    result = CliRunner().invoke(encoders_group, ["export", "--model-dir", str(tiny_model_dir), "--out", str(out),
                                                 "--int8", "--min-cosine", "0.5"])
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").is_file() and (out / "model.int8.json").is_file()
    assert "min cosine to fp32" in result.output
    refused = CliRunner().invoke(encoders_group, ["export", "--model-dir", str(tiny_model_dir), "--out", str(out),
                                                  "--int8", "--min-cosine", "1.0"])
    assert refused.exit_code != 0 and "rejected" in refused.output
