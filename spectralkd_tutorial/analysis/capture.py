"""Per-layer outputs of a Hugging Face encoder, captured with forward hooks.

    layer 0  = output of the embeddings module      (= hidden_states[0])
    layer l  = output of transformer block l         (= hidden_states[l]), l = 1..L

Hooks registered once cost less than asking the model for ``output_hidden_states=True`` on every
call (transformers 5 records those through its own per-call machinery), which matters for the
streaming profiler's overhead target. :func:`capture_supported` says whether a model has the
``base_model.embeddings`` + block list layout (BERT, RoBERTa, DistilBERT, DeBERTa-v2, ELECTRA, ViT, DeiT); otherwise callers fall
back to ``output_hidden_states``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

def encoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks (block l produces ``hidden_states[l]``)."""
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "encoder.layers", "transformer.layer", "layers"):
        module = base
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise TypeError(
        f"cannot find the transformer blocks of {type(model).__name__}; supported: BERT (and MiniLM), RoBERTa, "
        "DistilBERT, DeBERTa-v2, ELECTRA, MPNet, ViT, DeiT and models with base_model.encoder.layer"
    )


def _embeddings(model: nn.Module) -> nn.Module | None:
    """The module whose output is ``hidden_states[0]``: the embeddings, or ELECTRA's projection of
    them to the hidden width (present when ``embedding_size != hidden_size``)."""
    base = getattr(model, "base_model", model)
    project = getattr(base, "embeddings_project", None)
    return project if isinstance(project, nn.Module) else getattr(base, "embeddings", None)


def capture_supported(model: nn.Module) -> bool:
    try:
        encoder_blocks(model)
    except TypeError:
        return False
    return isinstance(_embeddings(model), nn.Module)


class LayerCapture:
    """Context manager: ``with LayerCapture(model) as cap: model(**batch)``; then ``cap.outputs``
    holds ``[layer 0, layer 1, ..., layer L]`` of the last forward pass (detached)."""

    def __init__(self, model: nn.Module) -> None:
        if not capture_supported(model):
            raise TypeError(
                f"{type(model).__name__} has no base_model.embeddings + block list; use output_hidden_states=True"
            )
        self.modules = [_embeddings(model), *encoder_blocks(model)]
        self.outputs: list[Tensor | None] = [None] * len(self.modules)
        self._handles: list[Any] = []

    def _hook(self, index: int):
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            value = output[0] if isinstance(output, (tuple, list)) else output
            self.outputs[index] = value.detach()

        return record

    def __enter__(self) -> "LayerCapture":
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def take(self) -> list[Tensor]:
        """The captured layers of the last forward pass (and forget them)."""
        if any(o is None for o in self.outputs):
            missing = [i for i, o in enumerate(self.outputs) if o is None]
            raise RuntimeError(f"layers {missing} produced no output: was the model called inside the context?")
        outputs, self.outputs = list(self.outputs), [None] * len(self.modules)
        return outputs  # type: ignore[return-value]
