"""Chapter 2 exercises: a ViT's token count, and two predict-then-check experiments on the selection rule.

    tokens per image = P + h*w,   (h, w) = image size // patch size,   P = prefix tokens
    I_l(c * X)       = |c| * I_l(X)       (the DFT is linear: every |F[k]| scales by |c|)
    spectral-topk    = the K blocks of largest I_l;   "= last" when they are the last K blocks

The right answers come from the package: a tiny ViT/DeiT of the asked image and patch size is built
and run (:func:`spectralkd_tutorial.course.vision.vision_hidden_states`); for the selection rule, hidden
states of the stated intensities are built, one layer is scaled, the intensities are measured again
(:func:`spectralkd_tutorial.analysis.spectral.spectral_intensity`) and the layers are chosen by
:func:`spectralkd_tutorial.analysis.selection.select_layers`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch

from ...analysis.selection import select_layers
from ...analysis.spectral import spectral_intensity
from ..vision import patch_grid, prefix_token_count, tiny_vit_config, vision_hidden_states
from ._feedback import Feedback, WrongAnswer, as_int, as_int_list, checker, correct
from .ch3_text import _common_layer_hints

__all__ = ["check_token_count", "check_scaled_topk", "check_same_as_last", "COMPARED_STRATEGIES"]

#: The strategies :func:`check_same_as_last` asks about.
COMPARED_STRATEGIES = ("spectral-topk", "spectral-ends", "uniform", "first")


@functools.lru_cache(maxsize=8)
def _token_layout(image_size: int, patch_size: int, distilled: bool) -> tuple[int, int, tuple[int, int]]:
    """(tokens per image in hidden_states, prefix tokens, patch grid) of a real HF ViT / distilled DeiT."""
    from transformers import DeiTForImageClassificationWithTeacher, ViTForImageClassification

    from ...models.loading import quiet_transformers

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


def _hidden_states_with(intensities: Sequence[float], width: int = 16, tokens: int = 12) -> list[torch.Tensor]:
    """One seeded random (1, tokens, width) tensor per layer, rescaled so that its measured intensity
    is ``intensities[l]`` (exact, because the intensity is proportional to the scale)."""
    generator = torch.Generator().manual_seed(0)
    states = []
    for value in intensities:
        hidden = torch.randn(1, tokens, width, generator=generator, dtype=torch.float64)
        states.append(hidden * (float(value) / spectral_intensity(hidden)))
    return states


@checker
def check_scaled_topk(answer: Any, *, intensities: Sequence[float], layer: int, factor: float = 2.0,
                      num_student_layers: int = 3) -> Feedback:
    """The blocks ``spectral-topk`` picks after block ``layer``'s activations are multiplied by ``factor``."""
    states = _hidden_states_with(intensities)
    states[layer] = states[layer] * factor
    measured = [spectral_intensity(hidden) for hidden in states]
    blocks = len(intensities) - 1
    truth = select_layers("spectral-topk", num_student_layers, blocks, measured).teacher_layers
    before = select_layers("spectral-topk", num_student_layers, blocks, list(intensities)).teacher_layers
    guess = sorted(as_int_list(answer, "a list of teacher blocks"))
    if guess == truth:
        return correct(f"I_{layer} went from {float(intensities[layer]):.3g} to {measured[layer]:.3g}: every Fourier "
                       f"coefficient of {factor:g} * X is {factor:g} times that of X, so the intensity scales with "
                       "the activations, and the rule ranks layers by their size. Nothing about the layer's "
                       "'frequency content' changed.")
    _common_layer_hints(guess, num_student_layers, blocks)
    if guess == before and truth != before:
        raise WrongAnswer(f"that is the choice before the scaling: multiplying a layer's activations by "
                          f"{factor:g} multiplies every |F[k]| of it by {factor:g}, so its intensity changes too")
    if layer in truth and layer not in guess:
        raise WrongAnswer(f"what is block {layer}'s intensity after the scaling? Compare it with the others")
    if layer not in truth and layer in guess:
        raise WrongAnswer(f"even scaled, block {layer} is not among the {num_student_layers} largest: the "
                          "intensity scales like the activations, not like their square (energy)")
    raise WrongAnswer(f"recompute block {layer}'s intensity, then take the {num_student_layers} largest of blocks "
                      f"1 .. {blocks}")


def _strategy_names(answer: Any) -> set[str]:
    if isinstance(answer, str):
        answer = [answer] if answer.strip() else []
    try:
        names = {str(name).strip().lower() for name in answer}
    except TypeError:
        raise WrongAnswer(f"give a list of strategy names (possibly empty) from {list(COMPARED_STRATEGIES)}") from None
    unknown = names - set(COMPARED_STRATEGIES)
    if unknown:
        raise WrongAnswer(f"unknown name(s) {sorted(unknown)}: choose among {list(COMPARED_STRATEGIES)}")
    return names


@checker
def check_same_as_last(answer: Any, *, intensities: Sequence[float], num_student_layers: int = 4) -> Feedback:
    """Which of :data:`COMPARED_STRATEGIES` choose exactly ``last``'s blocks (a table would mark them "= last")?"""
    blocks = len(intensities) - 1
    last = select_layers("last", num_student_layers, blocks).teacher_layers
    chosen = {name: select_layers(name, num_student_layers, blocks, list(intensities)).teacher_layers
              for name in COMPARED_STRATEGIES}
    truth = {name for name, layers in chosen.items() if layers == last}
    guess = _strategy_names(answer)
    if guess == truth:
        listed = ", ".join(f"{name} -> {chosen[name]}" for name in COMPARED_STRATEGIES)
        return correct(f"last -> {last}; {listed}. Where the spectral rule returns `last`, a grid trains the "
                       "same student twice and its table marks the row (= last).")
    hints = {  # the rule of the first strategy judged wrongly, without its name (that would be the answer)
        "spectral-topk": "recheck the rule that takes the K largest blocks wherever they sit: are all of them "
                         "among the last K?",
        "spectral-ends": "recheck the rule that compares every split 'first a + last K-a' by its total intensity: "
                         "work out the totals for a = 0, 1, ... and see which wins",
        "uniform": "recheck the rule that spaces its picks evenly, l_i = round(i * L / K): write them down",
        "first": "recheck the rule that takes blocks 1 .. K",
    }
    wrong = sum((name in guess) != (name in truth) for name in COMPARED_STRATEGIES)
    for name in COMPARED_STRATEGIES:
        if (name in guess) != (name in truth):
            raise WrongAnswer(f"{wrong} of the {len(COMPARED_STRATEGIES)} verdicts wrong; {hints[name]}")
    raise WrongAnswer("compare each strategy's blocks with last's")  # not reached: the sets differ somewhere
