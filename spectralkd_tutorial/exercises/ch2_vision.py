"""Chapter 2 exercises: a ViT's token count, the hottest layer, and the shape of an intensity curve.

    tokens per image = P + h*w,   (h, w) = image size // patch size,   P = prefix tokens
    hottest layer    = argmax_l I_l            (layer 0 = embedding output, layer l = block l)

The right answers come from the package: a tiny ViT/DeiT of the asked image and patch size is built
and run (:func:`spectralkd_tutorial.vision.vision_hidden_states`), and curves are read with
:func:`spectralkd_tutorial.vision.profile_shape`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch

from ..vision import patch_grid, prefix_token_count, profile_shape, tiny_vit_config, vision_hidden_states
from ._feedback import Feedback, WrongAnswer, as_int, as_number, checker, close, correct

__all__ = ["check_token_count", "check_hottest_layer", "check_curve_shape", "SHAPES"]

#: The labels of :func:`spectralkd_tutorial.vision.profile_shape`, in the order its rule tests them.
SHAPES = ("U-shape", "rising", "falling", "peaked", "mixed")


@functools.lru_cache(maxsize=8)
def _token_layout(image_size: int, patch_size: int, distilled: bool) -> tuple[int, int, tuple[int, int]]:
    """(tokens per image in hidden_states, prefix tokens, patch grid) of a real HF ViT / distilled DeiT."""
    from transformers import DeiTForImageClassificationWithTeacher, ViTForImageClassification

    from ..models import quiet_transformers

    quiet_transformers()
    config = tiny_vit_config(distilled=distilled, image_size=image_size, patch_size=patch_size, num_channels=3,
                             hidden_size=8, num_layers=1, num_heads=1)
    torch.manual_seed(0)
    model = (DeiTForImageClassificationWithTeacher if distilled else ViTForImageClassification)(config)
    hidden = vision_hidden_states(model, torch.zeros(1, 3, image_size, image_size))
    return int(hidden[0].shape[1]), prefix_token_count(model), patch_grid(model)


@checker
def check_token_count(answer: Any, *, image_size: int = 224, patch_size: int = 16,
                      distilled: bool = True) -> Feedback:
    """Tokens per image in ``hidden_states[l]`` of a ViT (``distilled=False``) or distilled DeiT."""
    tokens, prefix, (h, w) = _token_layout(int(image_size), int(patch_size), bool(distilled))
    guess = as_int(answer, "the number of tokens per image")
    if guess == tokens:
        return correct(f"{h} x {w} = {h * w} patch tokens plus {prefix} prefix token(s) = {tokens}; the "
                       f"profiler drops the first {prefix} before taking any spectrum.")
    if guess == h * w:
        raise WrongAnswer("that is the patch grid alone: hidden_states also carries the prefix tokens "
                          "in front of the patches")
    if guess == h * w + prefix - 1:
        raise WrongAnswer("one short: count every prefix token ([CLS] and, for a distilled DeiT, the "
                          "distillation token)")
    if guess == h * w + prefix + 1:
        raise WrongAnswer("one too many: ViT has only [CLS] in front; a distilled DeiT adds the distillation "
                          "token, and nothing else")
    if guess in (h, w, h + prefix):
        raise WrongAnswer("that is the number of patches along one side; the grid is two-dimensional")
    if guess * patch_size in (image_size * image_size, image_size * image_size + prefix * patch_size):
        raise WrongAnswer("a patch is patch_size x patch_size pixels, not patch_size pixels")
    raise WrongAnswer("count the patches (image size // patch size along each side, then the grid's area) "
                      "and add the prefix tokens")


@checker
def check_hottest_layer(answer: Any, *, intensities: Sequence[float]) -> Feedback:
    """The layer of largest intensity, with layer 0 = the embedding output."""
    shape = profile_shape(intensities)
    hottest, coldest, last = shape["hottest"], shape["coldest"], len(intensities) - 1
    value = as_number(answer, "a layer number")
    if value != int(value) and any(close(value, float(i)) for i in intensities):
        raise WrongAnswer("that is an intensity value; the question asks for the layer number")
    guess = as_int(answer, "a layer number")
    if guess == hottest:
        return correct(f"layer {hottest} (I = {float(intensities[hottest]):.4g}); counting from 0 because "
                       "layer 0 is the embedding output.")
    if guess == hottest + 1:
        raise WrongAnswer("off by one: layer 0 is the embedding output, so the first value in the list is "
                          "layer 0, the second layer 1, and so on")
    if not 0 <= guess <= last:
        raise WrongAnswer(f"layers are numbered 0 (embeddings) .. {last} (the last block)")
    if guess == coldest:
        raise WrongAnswer("that is the coldest layer (the smallest intensity); the question asks for the "
                          "largest")
    raise WrongAnswer("that layer is not the hottest: look for the largest value, and count positions "
                      "from 0")


def _normalise_shape(answer: Any) -> str:
    if not isinstance(answer, str):
        raise WrongAnswer(f"answer with one of the labels {', '.join(repr(s) for s in SHAPES)}")
    text = answer.strip().lower().replace("_", "-").replace(" ", "-")
    if text in ("u", "u-shape", "u-shaped", "ushape"):
        return "U-shape"
    if text not in SHAPES:
        raise WrongAnswer(f"answer with one of the labels {', '.join(repr(s) for s in SHAPES)}")
    return text


def _criteria(intensities: Sequence[float], shape: dict[str, Any]) -> dict[str, bool]:
    """Which of profile_shape's tests hold on their own (the rule takes the first that does)."""
    values = [float(v) for v in intensities]
    interior = values[1:-1]
    mean = sum(interior) / len(interior)
    last, rho = len(values) - 1, shape["rank_correlation_with_depth"]
    ends_above, ends_below = values[0] > mean and values[-1] > mean, values[0] < mean and values[-1] < mean
    return {
        "U-shape": 0 < shape["coldest"] < last and ends_above,
        "rising": rho >= 0.8,
        "falling": rho <= -0.8,
        "peaked": 0 < shape["hottest"] < last and ends_below,
    }


@checker
def check_curve_shape(answer: Any, *, intensities: Sequence[float]) -> Feedback:
    """``profile_shape``'s verdict: 'U-shape', 'rising', 'falling', 'peaked' or 'mixed'."""
    shape = profile_shape(intensities)
    truth = shape["shape"]
    guess = _normalise_shape(answer)
    if guess == truth:
        return correct(f"{truth}: {shape['description']}.")
    holds = _criteria(intensities, shape)
    if guess == "mixed":
        raise WrongAnswer("not 'mixed': one of the four tests matches this curve")
    if holds[guess]:
        raise WrongAnswer(f"the test for {guess!r} does hold, but profile_shape stops at the FIRST test that "
                          "matches, in the order the question lists them: start again from the top")
    reasons = {
        "U-shape": "a U needs the coldest layer in the interior AND both end layers above the mean of the "
                   "interior layers (1 .. L-1)",
        "rising": "'rising' needs a rank (Spearman) correlation with depth of at least 0.8",
        "falling": "'falling' needs a rank (Spearman) correlation with depth of at most -0.8",
        "peaked": "'peaked' needs the hottest layer in the interior and both end layers below the interior mean",
    }
    raise WrongAnswer(f"not {guess!r} by the rule: {reasons[guess]}")
