"""Train and evaluate an image classifier (the tiny ViT on digits): cross-entropy, AdamW, one-cycle.

    loss = CE(model(pixels), labels)          accuracy = mean(argmax logits == labels)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...config.sections import TrainConfig
from ...common.device import resolve_device
from ...engine.optimization import Optimization
from .digits import DigitsData

__all__ = ["train_vit", "evaluate_vit"]


@torch.no_grad()
def evaluate_vit(model: nn.Module, pixels: Tensor, labels: Tensor, *, batch_size: int = 256) -> float:
    """Top-1 accuracy of an image classifier on ``pixels``."""
    if len(pixels) != len(labels) or len(labels) == 0:
        raise ValueError(f"pixels ({len(pixels)}) and labels ({len(labels)}) must be non-empty and equally long")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    try:
        for start in range(0, len(labels), batch_size):
            logits = model(pixel_values=pixels[start : start + batch_size].to(device)).logits
            correct += int((logits.argmax(-1).cpu() == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(labels)


def train_vit(
    model: nn.Module,
    data: DigitsData,
    epochs: int,
    *,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    warmup: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Cross-entropy training with AdamW and a one-cycle schedule; evaluates on the test split.

    Returns ``{"history": [{"epoch", "loss", "test_accuracy"}, ...], "test_accuracy": final}``.
    Each epoch's order depends on (seed, epoch) only; incomplete last batches are dropped.
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    n = len(data.train_labels)
    steps_per_epoch = n // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the training set ({n} images)")
    device = resolve_device(device)
    model.to(device)
    torch.manual_seed(seed)
    total = epochs * steps_per_epoch
    # the text loop's optimizer step (core.optimization), with this chapter's one-cycle schedule
    train = TrainConfig(epochs=epochs, learning_rate=lr, batch_size=batch_size, weight_decay=weight_decay,
                        warmup_ratio=warmup)
    optimization = Optimization.create(model.parameters(), train, total, device, schedule="one-cycle", clip=False,
                                       decay_matrices_only=False)
    history = []
    bar = tqdm(total=total, desc="training ViT", disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            running = 0.0
            for step in range(steps_per_epoch):
                index = order[step * batch_size : (step + 1) * batch_size]
                loss = model(pixel_values=data.train_pixels[index].to(device),
                             labels=data.train_labels[index].to(device)).loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; lower lr={lr}")
                optimization.backward(loss, last_of_window=True)
                running += float(loss.detach())
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.3f}")
            accuracy = evaluate_vit(model, data.test_pixels, data.test_labels)
            history.append({"epoch": epoch + 1, "loss": running / steps_per_epoch, "test_accuracy": accuracy})
    finally:
        bar.close()
        model.eval()
    return {"history": history, "test_accuracy": history[-1]["test_accuracy"], "epochs": epochs,
            "train_size": n, "test_size": len(data.test_labels)}
