"""Chapter 3 exercises: which layers `spectral-ends` and `uniform` pick, and a masked signature.

    spectral-ends:  layers 1..a  +  the last b blocks,  a + b = K,  maximising sum of I_l
    uniform:        l_i = round(i * L_T / K),  i = 1..K
    S[k]          = sum_{n,t} m[n,t] * A[n,t,k] / sum_{n,t} m[n,t]        (padding excluded)

The right answers come from :func:`spectralkd_tutorial.analysis.selection.select_layers` and
:func:`spectralkd_tutorial.analysis.spectral.spectral_signature`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ...analysis.selection import select_layers
from ...analysis.spectral import spectral_signature
from ._feedback import Feedback, WrongAnswer, as_int_list, as_number, checker, close, correct

__all__ = ["check_spectral_ends", "check_uniform_layers", "check_masked_signature"]


def _common_layer_hints(guess: list[int], num_student_layers: int, num_teacher_layers: int) -> None:
    if len(guess) != num_student_layers:
        raise WrongAnswer(f"the student has {num_student_layers} layers: choose exactly {num_student_layers} "
                          "teacher layers (one per student layer)")
    if len(set(guess)) != len(guess):
        raise WrongAnswer("each teacher layer can be chosen once only")
    if 0 in guess:
        raise WrongAnswer("layer 0 (the embedding output) is not a candidate: the strategies choose among the "
                          f"blocks 1 .. {num_teacher_layers}")
    if not all(1 <= layer <= num_teacher_layers for layer in guess):
        raise WrongAnswer(f"the teacher's blocks are numbered 1 .. {num_teacher_layers}")


def _is_first_plus_last(layers: list[int], num_teacher_layers: int) -> bool:
    chosen = set(layers)
    a = 0
    while a + 1 in chosen:
        a += 1
    tail = chosen - set(range(1, a + 1))
    return tail == set(range(num_teacher_layers - len(tail) + 1, num_teacher_layers + 1))


@checker
def check_spectral_ends(answer: Any, *, intensities: Sequence[float], num_student_layers: int) -> Feedback:
    """The teacher layers ``spectral-ends`` keeps for a ``num_student_layers`` student (``intensities``: I_0..I_L)."""
    total = len(intensities) - 1
    mapping = select_layers("spectral-ends", num_student_layers, total, intensities)
    truth = mapping.teacher_layers
    guess = sorted(as_int_list(answer, "a list of teacher layers"))
    if guess == truth:
        return correct(f"{truth}: the first {mapping.details['first']} and the last {mapping.details['last']} "
                       f"blocks, total intensity {mapping.details['chosen_intensity']:.4g}; no other first+last "
                       "split has more.")
    _common_layer_hints(guess, num_student_layers, total)
    topk = select_layers("spectral-topk", num_student_layers, total, intensities).teacher_layers
    if guess == topk:
        raise WrongAnswer("you picked the hottest layers, but spectral-ends keeps a first block and a last "
                          "block (the hottest layers are what spectral-topk picks)")
    if not _is_first_plus_last(guess, total):
        raise WrongAnswer("spectral-ends keeps a first block (layers 1 .. a) and a last block (the last b "
                          "blocks, ending at the teacher's last block); yours is not of that form")
    raise WrongAnswer("that is a first-plus-last split, but not the one with the largest total intensity: "
                      "add up I_l for every split a = 0 .. K and compare")


@checker
def check_uniform_layers(answer: Any, *, num_student_layers: int = 5, num_teacher_layers: int = 12) -> Feedback:
    """The teacher layers ``uniform`` (every k-th layer, TinyBERT / PKD-skip) maps a student onto."""
    k, total = num_student_layers, num_teacher_layers
    truth = select_layers("uniform", k, total).teacher_layers
    guess = sorted(as_int_list(answer, "a list of teacher layers"))
    if guess == truth:
        return correct(f"{truth}: student layer i copies teacher layer round(i * {total} / {k}); the last student "
                       "layer meets the teacher's last block.")
    _common_layer_hints(guess, k, total)
    if guess[-1] != total:
        raise WrongAnswer("uniform's last pick is the teacher's last block (i = K gives L_T)")
    steps = [i * total / k for i in range(1, k + 1)]
    if guess == [math.floor(s) for s in steps]:
        raise WrongAnswer("rounded down: uniform rounds i * L_T / K to the NEAREST layer")
    if guess == [math.ceil(s) for s in steps]:
        raise WrongAnswer("rounded up: uniform rounds i * L_T / K to the NEAREST layer")
    raise WrongAnswer("not every k-th layer: student layer i (1 .. K) copies teacher layer i * L_T / K, "
                      "rounded to the nearest layer")


@checker
def check_masked_signature(answer: Any, *, amplitudes: Sequence[Sequence[float]],
                           mask: Sequence[Sequence[int]]) -> Feedback:
    """``S[k]`` from per-token amplitudes ``A[n, t, k]`` (one bin) and an attention mask (0 = padding)."""
    values = torch.tensor(amplitudes, dtype=torch.float64)
    attention = torch.tensor(mask, dtype=torch.long)
    # a one-channel token x has |F[0]| = |x|: the signature of these tokens at bin 0 is the masked mean
    target = float(spectral_signature(values.abs()[..., None], attention)[0])
    guess = as_number(answer, "S[k], a number")
    if close(guess, target):
        return correct(f"S[k] = {target:g}: the mean over the real tokens of all sentences; padding "
                       "never enters the sum or the count.")
    real = attention.bool()
    if close(guess, float(values.mean())):
        raise WrongAnswer("you averaged the padded positions too: tokens with mask 0 are excluded")
    per_sentence = [float(values[i][real[i]].mean()) for i in range(len(values)) if real[i].any()]
    if close(guess, sum(per_sentence) / len(per_sentence)):
        raise WrongAnswer("that is the mean of the sentences' means: S averages over all real tokens at once, "
                          "so a longer sentence counts more")
    if close(guess, float(values[real].sum()) / values.numel()):
        raise WrongAnswer("you zeroed the padding but still divided by every position: divide by the number "
                          "of real tokens")
    if close(guess, float(values[real].sum())):
        raise WrongAnswer("that is a sum; the signature is a mean over the real tokens")
    raise WrongAnswer("not the masked mean: add A over the tokens whose mask is 1 and divide by how many "
                      "there are")
