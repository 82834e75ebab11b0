"""ONNX graph passes for a CPU-served BERT-family encoder (imports onnx/onnxruntime lazily).

`optimize_transformer`: ONNX Runtime's transformer optimizer with the fusions that pay on
CPU; `smooth_matmul_inputs`: SmoothQuant-style per-channel scales moved from LayerNorm outputs
into the weights that read them (exact in fp32, better int8). Measurements: docs/encoders.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)
# ORT's SkipLayerNormalization CPU kernel (float) is a scalar loop with a division per element:
# 3-7x slower than Add + LayerNormalization on the same tensor here, so it is neither fused
# offline nor at session start (OnnxEncoder passes this to InferenceSession).
SESSION_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
LAYER_NORMS = ("LayerNormalization", "EmbedLayerNormalization")
WEIGHT_READERS = ("MatMul", "Attention")


def optimize_transformer(src: Path, dst: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Fuse attention, embedding layer norm and layer norm of a BERT graph (CPU, fp32).

    Args:
        src: the plain torch.onnx export.
        dst: where the optimized graph is written.
        num_heads, hidden_size: the model's attention heads and width (from its config).

    Returns:
        Fused operator counts, e.g. {"Attention": 6, "EmbedLayerNormalization": 1, ...}.
        SkipLayerNormalization and BiasGelu stay unfused: their CPU kernels were slower than
        what they replace (see SESSION_DISABLED_OPTIMIZERS; BiasGelu also keeps the FFN bias
        out of the int8 MatMul's fused bias).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_bias_gelu = False
    model = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                           opt_level=0, optimization_options=options, use_gpu=False)
    model.save_model_to_file(str(dst))
    stats: dict[str, int] = model.get_fused_operator_statistics()
    return {op: count for op, count in stats.items() if count}


def smoothable_activations(model: Any) -> dict[str, list[Any]]:
    """LayerNorm outputs read by weight products: activation name -> its MatMul/Attention readers.

    Only readers whose second input is a 2-D initializer (rows = the activation's channels)
    count; other readers (the residual Add) keep the unscaled tensor.
    """
    weights = {init.name: init for init in model.graph.initializer}
    produced = {node.output[0] for node in model.graph.node if node.op_type in LAYER_NORMS}
    readers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if (node.op_type in WEIGHT_READERS and node.input[0] in produced and len(node.input) > 1
                and node.input[1] in weights and len(weights[node.input[1]].dims) == 2):
            readers.setdefault(node.input[0], []).append(node)
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    # A weight read elsewhere too (tied weights) cannot be rescaled for one reader alone.
    return {name: nodes for name, nodes in readers.items() if all(uses[n.input[1]] == 1 for n in nodes)}


def activation_absmax(
    model_path: Path, names: Iterable[str], feeds: Iterable[Mapping[str, npt.NDArray[np.int64]]]
) -> dict[str, npt.NDArray[np.float32]]:
    """Per-channel max |value| of intermediate tensors over the real (mask 1) tokens of `feeds`.

    Args:
        model_path: an fp32 graph holding the tensors `names` (float[batch, seq, channels]).
        names: tensor names to observe.
        feeds: session inputs (input_ids, attention_mask, ...), int64[batch, seq] each.

    Returns:
        name -> float32[channels].
    """
    import onnx
    import onnxruntime as ort

    wanted = list(names)
    probe = onnx.load(str(model_path))
    for name in wanted:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    absmax: dict[str, npt.NDArray[np.float32]] = {}
    for feed in feeds:
        real = feed["attention_mask"].astype(bool)
        outputs = session.run(wanted, {k: v for k, v in feed.items() if k in inputs})
        for name, value in zip(wanted, outputs, strict=True):
            channel_max = np.abs(np.asarray(value)[real]).max(axis=0).astype(np.float32)
            absmax[name] = np.maximum(absmax[name], channel_max) if name in absmax else channel_max
    return absmax


def smooth_matmul_inputs(
    src: Path, dst: Path, feeds: Iterable[Mapping[str, npt.NDArray[np.int64]]], alpha: float = 0.5
) -> int:
    """Move per-channel scale from LayerNorm outputs into the weights that read them.

    For each smoothable activation X (channels j) and its weights W (rows j):
    s_j = 2^round(log2(max|X_j|^alpha / max|W_j|^(1-alpha))), X' = X / s (one Mul node),
    W' = diag(s) W. Powers of two keep the fp32 graph exact; X' has no outlier channel that
    would stretch a per-tensor int8 activation scale (SmoothQuant, Xiao et al. 2023).

    Args:
        src, dst: fp32 graph in, smoothed fp32 graph out.
        feeds: calibration batches (see `activation_absmax`).
        alpha: migration strength in [0, 1].

    Returns:
        The number of activations smoothed.
    """
    import onnx
    from onnx import numpy_helper

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    model = onnx.load(str(src))
    readers = smoothable_activations(model)
    absmax = activation_absmax(src, readers, feeds)
    weights = {init.name: init for init in model.graph.initializer}
    muls: dict[str, Any] = {}
    for name, nodes in readers.items():
        matrices = [numpy_helper.to_array(weights[node.input[1]]) for node in nodes]
        weight_max = np.max([np.abs(m).max(axis=1) for m in matrices], axis=0)
        raw = np.maximum(absmax[name], 1e-5) ** alpha / np.maximum(weight_max, 1e-5) ** (1.0 - alpha)
        scale = np.exp2(np.round(np.log2(raw))).astype(np.float32)
        inverse = f"{name}/smooth_inverse"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse))
        muls[name] = onnx.helper.make_node("Mul", [name, inverse], [f"{name}/smoothed"], name=f"{name}/smooth")
        for node, matrix in zip(nodes, matrices, strict=True):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(matrix * scale[:, None], node.input[1]))
            node.input[0] = f"{name}/smoothed"
    ordered = []
    for node in model.graph.node:
        ordered.append(node)
        ordered.extend(muls[out] for out in node.output if out in muls)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    onnx.save(model, str(dst))
    log.info("smoothed %d activations (alpha %.2f)", len(muls), alpha)
    return len(muls)
