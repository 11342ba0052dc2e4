"""Shipping a classifier: ONNX export, dynamic int8 quantization, and ONNX Runtime inference.

    export_onnx(model, tokenizer, "runs/mine/onnx")            # model.onnx + tokenizer + config.json
    quantize_int8("runs/mine/onnx")                             # model_int8.onnx beside it
    onnx_model, tokenizer = load_onnx_dir("runs/mine/onnx", "model_int8.onnx")
    onnx_model(**tokenizer(["wake me up at 7"], return_tensors="pt")).logits

The export is ``torch.onnx.export`` (the TorchScript tracer, dynamic batch and sequence axes), not
Hugging Face Optimum: ``optimum-onnx`` pins ``transformers<4.58`` and this project runs on
transformers 5. Quantization is ONNX Runtime's ``quantize_dynamic``: the weights of every
``MatMul`` and the embedding tables stored as int8 with one scale per output channel (on the
workshop student per-channel scales made int8 agree with fp32 on 98.5% of test predictions, one
scale per tensor on 97.1%), activations quantized on the fly,

    W[:, j] ≈ s_j · (q[:, j] − z_j),   q ∈ [−128, 127],   s_j = (max W[:, j] − min W[:, j]) / 255

and the matrix products run in integer arithmetic. On the workshop student it was faster than
PyTorch's ``torch.ao.quantization.quantize_dynamic`` at batch 1 and 32 (``spectralkd bench serve``
measures both). ``OnnxClassifier`` is an ``nn.Module`` whose ``forward`` returns ``.logits`` like a
transformers classifier, so the project's ``predict``/``evaluate``/latency code runs it unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..common.errors import UsageError

ONNX_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
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
        with warnings.catch_warnings():  # the tracer's notes on Python conditions fixed at export time
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"]), str(tmp), dynamo=False,
                              input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                              opset_version=opset)

    path = _replace_atomically(write, out / ONNX_FILE)
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return path


def quantize_int8(directory: str | os.PathLike, *, source: str = ONNX_FILE, target: str = INT8_FILE) -> Path:
    """ONNX Runtime dynamic quantization of ``DIR/source`` into ``DIR/target``: int8 weights of the matrix
    products (``MatMulInteger``) and of the embedding tables (dequantized after the lookup)."""
    require_serving()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(directory)
    if not (folder / source).is_file():
        raise UsageError(f"no {source} in {folder}: export the model first (spectralkd export --model DIR)")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process, logged on the root logger each call
    try:
        return _replace_atomically(lambda tmp: quantize_dynamic(str(folder / source), str(tmp), per_channel=True,
                                                                weight_type=QuantType.QInt8), folder / target)
    finally:
        root.setLevel(level)


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

class OnnxClassifier(nn.Module):
    """An ONNX Runtime session that answers like a transformers sequence classifier (``.logits``)."""

    def __init__(self, path: str | os.PathLike, config: Any, *, threads: int | None = None):
        super().__init__()
        require_serving()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.config = config
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feeds)[0]))


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


__all__ = ["INT8_FILE", "ONNX_FILE", "OnnxClassifier", "agreement", "export_onnx", "file_size", "load_onnx_dir",
           "logits_of", "quantize_int8", "quantize_torch_int8", "require_serving", "serving_available"]
