"""Shipping a classifier: ONNX export, dynamic int8 quantization, and ONNX Runtime inference.

    export_onnx(model, tokenizer, "runs/mine/onnx")            # model.onnx + tokenizer + config.json
    feeds = calibration_feeds(tokenizer, train_texts, max_length=48)
    quantize_int8("runs/mine/onnx", calibration=feeds)          # model_int8.onnx (+ int8.json) beside it
    onnx_model, tokenizer = load_onnx_dir("runs/mine/onnx", "model_int8.onnx")
    onnx_model(**tokenizer(["wake me up at 7"], return_tensors="pt")).logits

The export is ``torch.onnx.export`` (the TorchScript tracer, dynamic batch and sequence axes), not
Hugging Face Optimum: ``optimum-onnx`` pins ``transformers<4.58`` and this project runs on
transformers 5. Quantization is ONNX Runtime's ``quantize_dynamic`` of the linear layers' ``MatMul``
weights, int8 with one scale per output channel, activations quantized on the fly (one scale per
tensor), the products in integer arithmetic:

    W[:, j] ≈ s_j · (q[:, j] − z_j),   q ∈ [−128, 127],   s_j = (max W[:, j] − min W[:, j]) / 255

One scale per activation tensor is where the error comes from: a few hidden channels carry values
10-15x larger than the rest (28.7 against a median of 1.8 at the first FFN's input of the workshop
student), so the step of the 256 levels is too coarse for all the others. Before quantizing, the
activations are **smoothed** (SmoothQuant, Xiao et al. 2023): the channel ranges move into the
weights, which tolerate them (their scales are per output channel),

    X W = (X · diag(c)⁻¹) · (diag(c) · W),   c_i = max|X[:, i]|^α / max|W[i, :]|^(1−α),   α = 0.8

exact in float32 (one ``Mul`` by 1/c before the products that read X), max|X[:, i]| measured by running the
model on training utterances (calibration). The embedding tables, the pooler, the classifier and the
attention products (softmax(QKᵀ)V) stay float32. On the workshop student (3 blocks of MiniLM) int8
then agreed with fp32 on 99.3% of the CLINC150 test predictions; without smoothing 98.5%, with int8
embeddings too 98.3%, with α = 0.5 instead of 0.8 98.1%. ``DIR/int8.json`` records the recipe: the
quantized nodes, the smoothed ones, what stays in float32. On the workshop student ONNX Runtime's
int8 was faster than PyTorch's ``torch.ao.quantization.quantize_dynamic`` at batch 1 and 32
(``spectralkd bench serve`` measures both). ``OnnxClassifier`` is an ``nn.Module`` whose ``forward`` returns ``.logits`` like a
transformers classifier, so the project's ``predict``/``evaluate``/latency code runs it unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import random
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..common.errors import UsageError

ONNX_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
RECIPE_FILE = "int8.json"
SMOOTHING_ALPHA = 0.8
CALIBRATION_TEXTS = 512
QUANTIZED_OPS = ("MatMul",)
_DENORMAL = torch.tensor(1e-39, dtype=torch.float32)
OPSET = 17
INSTALL_HINT = "pip install 'spectralkd-tutorial[serve]' (onnxruntime and onnx)"
INPUTS = ("input_ids", "attention_mask")


def require_serving(what: str = "ONNX export and int8 quantization") -> None:
    """Raise a one-line ``UsageError`` naming the install command when onnxruntime/onnx are missing."""
    missing = []
    for module in ("onnxruntime", "onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UsageError(f"{what} needs {' and '.join(missing)}, not installed: {INSTALL_HINT}")


def serving_available() -> bool:
    try:
        require_serving()
    except UsageError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# export and quantization
# ---------------------------------------------------------------------------------------------

def _replace_atomically(write, target: Path) -> Path:
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    write(tmp)
    os.replace(tmp, target)
    return target


@contextmanager
def eager_attention(model: nn.Module):
    """The model's attention written out as matrix products and a softmax while exporting: a plainer
    graph than the traced ``scaled_dot_product_attention`` (no NaN guards, fewer shape computations),
    which ONNX Runtime ran faster at batch 32 on the workshop student; the model's setting comes back after."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = previous not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if switch:
            model.set_attn_implementation(previous)


def export_onnx(model: nn.Module, tokenizer, directory: str | os.PathLike, *, opset: int = OPSET) -> Path:
    """``DIR/model.onnx`` (inputs ``input_ids``/``attention_mask``, output ``logits``; batch and
    sequence length dynamic) plus the tokenizer and ``config.json`` (labels), so DIR is self-contained."""
    import warnings

    require_serving()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    sample = tokenizer(["wake me up at seven tomorrow", "hi"], padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), eager_attention(model):  # the tracer's notes on fixed Python conditions
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"]), str(tmp), dynamo=False,
                              input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                              opset_version=opset)

    path = _replace_atomically(write, out / ONNX_FILE)
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return path


def calibration_feeds(tokenizer, texts: Sequence[str], *, max_length: int, count: int = CALIBRATION_TEXTS,
                      batch_size: int = 32, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``count`` of ``texts`` (a seeded draw) as ONNX Runtime inputs, in padded batches like served ones."""
    chosen = random.Random(seed).sample(list(texts), min(count, len(texts)))
    feeds = []
    for start in range(0, len(chosen), batch_size):
        batch = tokenizer(chosen[start : start + batch_size], truncation=True, max_length=max_length, padding=True,
                          return_tensors="np")
        feeds.append({name: batch[name].astype(np.int64) for name in INPUTS})
    return feeds


def weight_products(model) -> list:
    """The graph's ``MatMul`` nodes whose second input is a stored weight (the linear layers)."""
    weights = {t.name for t in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def activation_maxima(model, feeds: Sequence[dict[str, np.ndarray]], tensors: Sequence[str]) -> dict[str, np.ndarray]:
    """max |x| per channel (last axis) of each named tensor of ``model`` over all ``feeds``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                              for t in tensors if t not in outputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(tensors, session.run(list(tensors), feed)):
            largest = np.abs(value.reshape(-1, value.shape[-1])).max(0)
            maxima[name] = np.maximum(maxima[name], largest) if name in maxima else largest
    return maxima


def smooth_activations(model, feeds: Sequence[dict[str, np.ndarray]], *, alpha: float = SMOOTHING_ALPHA) -> list[str]:
    """SmoothQuant on ``model`` (an ``onnx.ModelProto``, changed in place): before the linear products
    ``X W`` reading one tensor X (query, key and value read the same) one ``Mul`` by 1/c, their
    weights' rows times c (c from X's and all their weights' ranges); the names of the products smoothed."""
    from onnx import helper, numpy_helper

    products = weight_products(model)
    readers: dict[str, list] = {}
    for node in products:
        readers.setdefault(node.input[0], []).append(node)
    maxima = activation_maxima(model, feeds, list(readers))
    weights = {t.name: t for t in model.graph.initializer}
    muls = {}
    for index, (tensor, nodes) in enumerate(readers.items()):
        matrices = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        weight_range = np.max([np.abs(w).max(1) for w in matrices], axis=0)
        c = np.maximum(maxima[tensor], 1e-5) ** alpha / np.maximum(weight_range, 1e-5) ** (1 - alpha)
        c = np.maximum(c, 1e-5).astype(np.float32)
        for node, matrix in zip(nodes, matrices):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((matrix * c[:, None]).astype(np.float32),
                                                                    node.input[1]))
            node.input[0] = f"smooth_{index}_output"
        model.graph.initializer.append(numpy_helper.from_array((1 / c).astype(np.float32), f"smooth_{index}_inverse"))
        muls[nodes[0].name] = helper.make_node("Mul", [tensor, f"smooth_{index}_inverse"], [f"smooth_{index}_output"],
                                               name=f"smooth_{index}")
    nodes = list(model.graph.node)
    del model.graph.node[:]
    for node in nodes:  # each Mul right before its first reader: the graph stays topologically sorted
        model.graph.node.extend([muls[node.name]] if node.name in muls else [])
        model.graph.node.append(node)
    return [n.name for n in products]


def quantize_int8(directory: str | os.PathLike, *, calibration: Sequence[dict[str, np.ndarray]] | None = None,
                  alpha: float = SMOOTHING_ALPHA, source: str = ONNX_FILE, target: str = INT8_FILE) -> Path:
    """``DIR/source`` -> ``DIR/target``: the linear layers' weights int8 per output channel, activations
    quantized on the fly (``DynamicQuantizeMatMul``), smoothed first when ``calibration`` feeds are
    given (:func:`calibration_feeds`); the recipe in ``DIR/int8.json``."""
    require_serving()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(directory)
    if not (folder / source).is_file():
        raise UsageError(f"no {source} in {folder}: export the model first (spectralkd export --model DIR)")
    model = onnx.load(str(folder / source))
    products = [n.name for n in weight_products(model)]
    smoothed = smooth_activations(model, calibration, alpha=alpha) if calibration else []
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process, logged on the root logger each call
    try:
        path = _replace_atomically(lambda tmp: quantize_dynamic(
            model, str(tmp), per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_quantize=products), folder / target)
    finally:
        root.setLevel(level)
    recipe = {"file": target, "source": source, "weights": "int8, one scale per output channel",
              "activations": "uint8, one scale per tensor, computed on the fly", "quantized": products,
              "smoothing": {"alpha": alpha, "calibration_batches": len(calibration),
                            "calibration_texts": int(sum(len(f["input_ids"]) for f in calibration)),
                            "nodes": smoothed} if calibration else None,
              "float32": "embeddings, attention products, pooler, classifier (every node not listed in quantized)"}
    _replace_atomically(lambda tmp: tmp.write_text(json.dumps(recipe, indent=1) + "\n"), folder / RECIPE_FILE)
    return path


def quantize_torch_int8(model: nn.Module) -> nn.Module:
    """PyTorch's dynamic int8 quantization of the ``nn.Linear`` layers (a copy): the alternative measured."""
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


# ---------------------------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------------------------

@contextmanager
def flushed_denormals():
    """Denormal floats (below 1.2e-38) read and written as zero on this thread (x86 FTZ/DAZ) inside the
    block, as before it afterwards. ONNX Runtime needs it: its softmax over attention scores whose padded
    positions hold -3.4e38 computes in denormals otherwise, several times slower (a [32, 12, 25, 25]
    softmax with half the positions masked: 3.9 ms against 0.6 ms here); the results do not change."""
    already = float(_DENORMAL * 1.0) == 0.0  # flushed before the block: left so
    flushed = already or torch.set_flush_denormal(True)
    try:
        yield flushed
    finally:
        if flushed and not already:
            torch.set_flush_denormal(False)


class OnnxClassifier(nn.Module):
    """An ONNX Runtime session that answers like a transformers sequence classifier (``.logits``),
    denormals flushed to zero while it runs (:func:`flushed_denormals`; on the pool's threads too)."""

    def __init__(self, path: str | os.PathLike, config: Any, *, threads: int | None = None):
        super().__init__()
        require_serving()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        self.path = Path(path)
        self.config = config
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        with flushed_denormals():
            logits = self.session.run(["logits"], feeds)[0]
        return SimpleNamespace(logits=torch.from_numpy(logits))


def load_onnx_dir(directory: str | os.PathLike, file: str = ONNX_FILE, *, threads: int | None = None):
    """``(OnnxClassifier, tokenizer)`` of a directory written by :func:`export_onnx`."""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(directory)
    if not (folder / file).is_file():
        raise UsageError(f"no {file} in {folder}: export it with `spectralkd export --model MODEL_DIR --out {folder}`")
    return (OnnxClassifier(folder / file, AutoConfig.from_pretrained(folder), threads=threads),
            AutoTokenizer.from_pretrained(folder))


@torch.no_grad()
def logits_of(model: nn.Module, tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int = 64) -> torch.Tensor:
    """Float32 logits of ``texts`` (batches in the given order, each padded to its longest text)."""
    model.eval()
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt")
        parts.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float())
    return torch.cat(parts)


def agreement(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """How ``other``'s logits follow ``reference``'s: share of equal top-1 predictions, largest and
    mean absolute logit difference."""
    difference = (other - reference).abs()
    return {"prediction_agreement": float((other.argmax(-1) == reference.argmax(-1)).float().mean()),
            "max_abs_logit_diff": float(difference.max()), "mean_abs_logit_diff": float(difference.mean())}


def file_size(path: str | os.PathLike) -> int:
    return Path(path).stat().st_size


__all__ = ["INT8_FILE", "ONNX_FILE", "RECIPE_FILE", "SMOOTHING_ALPHA", "OnnxClassifier", "activation_maxima",
           "agreement", "calibration_feeds", "export_onnx", "file_size", "flushed_denormals", "load_onnx_dir", "logits_of", "quantize_int8",
           "smooth_activations", "weight_products", "quantize_torch_int8", "require_serving", "serving_available"]
