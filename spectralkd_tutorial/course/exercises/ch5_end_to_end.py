"""Chapter 5 exercises: channel pooling's windows, a projection's size, and how `spectral-ends` splits
a smaller student.

    pooled channel j  = mean of teacher channels floor(j*H_t/H_s) .. ceil((j+1)*H_t/H_s) - 1
    projection        X_s W_p^T + b_p,   W_p in R^{H_t x H_s},  b_p in R^{H_t}
    spectral-ends     blocks 1..a + the last K - a blocks, the a maximising the sum of I_l

The right answers come from :func:`spectralkd_tutorial.losses.pool_teacher_channels` (pooling the
identity matrix shows each window), :class:`spectralkd_tutorial.losses.LayerProjections` built on the
``meta`` device (shapes only) and counted with :func:`spectralkd_tutorial.models.count_parameters`, and
:func:`spectralkd_tutorial.analysis.selection.select_layers` (its ``details["first"]`` is a).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...losses import LayerProjections, pool_teacher_channels
from ...models.loading import count_parameters
from ...analysis.selection import select_layers
from ._feedback import Feedback, WrongAnswer, as_int, as_int_list, checker, correct

__all__ = ["check_pool_window", "check_projection_parameters", "check_ends_split"]


@checker
def check_pool_window(answer: Any, *, teacher_width: int = 1024, student_width: int = 768,
                      channel: int = 3) -> Feedback:
    """Which teacher channels (numbered from 0) average into pooled channel ``channel``?"""
    weights = pool_teacher_channels(torch.eye(teacher_width, dtype=torch.float64), student_width)[:, channel]
    truth = [int(i) for i in torch.nonzero(weights).flatten()]
    guess = sorted(as_int_list(answer, "a list of teacher channels"))
    if guess == truth:
        return correct(f"{truth}, each with weight {float(weights[truth[0]]):g}: windows of adaptive average "
                       f"pooling run from floor(j*H_t/H_s) to ceil((j+1)*H_t/H_s); with H_t/H_s = "
                       f"{teacher_width / student_width:.4g} neighbouring windows share channels or skip ahead.")
    if not all(0 <= c < teacher_width for c in guess):
        raise WrongAnswer(f"teacher channels are numbered 0 .. {teacher_width - 1}")
    if guess == [c + 1 for c in truth]:
        raise WrongAnswer("off by one: channels are numbered from 0")
    if len(guess) != len(truth):
        raise WrongAnswer("wrong number of channels: pooled channel j averages the teacher channels from "
                          "floor(j*H_t/H_s) up to, but not including, ceil((j+1)*H_t/H_s)")
    if guess[0] == channel:
        raise WrongAnswer("the windows do not advance one channel at a time: pooled channel j starts at "
                          "floor(j*H_t/H_s)")
    raise WrongAnswer("the window starts at the wrong channel: pooled channel j starts at floor(j*H_t/H_s)")


@checker
def check_projection_parameters(answer: Any, *, student_width: int = 768, teacher_width: int = 1024) -> Feedback:
    """Learned parameters of one layer pair's projection, student width -> teacher width."""
    with torch.device("meta"):
        truth = count_parameters(LayerProjections(1, student_width, teacher_width))
    guess = as_int(answer, "a number of parameters")
    s, t = student_width, teacher_width
    if guess == truth:
        return correct(f"{truth:,}: W_p is {t} x {s} and the bias b_p has {t} entries, one per teacher channel. "
                       "It is trained with the student and thrown away afterwards.")
    if guess == s * t:
        raise WrongAnswer("that is W_p alone: nn.Linear also learns a bias b_p")
    if guess == s * t + s:
        raise WrongAnswer("the bias has one entry per OUTPUT channel, and the output is the teacher's width")
    if guess in (s * s + s, t * t + t, s * s, t * t):
        raise WrongAnswer("W_p maps the student width to the teacher width: it is H_t x H_s")
    if guess > truth and guess % truth == 0:
        raise WrongAnswer("count one layer pair only")
    raise WrongAnswer("count the entries of W_p (H_t x H_s) and of the bias b_p (one per output channel)")


def _ends_split(intensities: Sequence[float], num_student_layers: int) -> int:
    """``a``: how many of the first blocks ``spectral-ends`` keeps for a ``num_student_layers`` student."""
    mapping = select_layers("spectral-ends", num_student_layers, len(intensities) - 1, list(intensities))
    return int(mapping.details["first"])


@checker
def check_ends_split(answer: Any, *, intensities: Sequence[float], num_student_layers: int = 6,
                     reference_layers: int = 12) -> Feedback:
    """How many of the first blocks (a) ``spectral-ends`` keeps for a ``num_student_layers`` student, given
    the split it made for a ``reference_layers`` student on the same curve."""
    truth = _ends_split(intensities, num_student_layers)
    reference = _ends_split(intensities, reference_layers)
    guess = as_int(answer, "a, a whole number of blocks")
    k = num_student_layers
    if guess == truth:
        return correct(f"a = {truth}, so the last {k - truth} blocks complete it. The split is not a proportion "
                       f"of the {reference} + {reference_layers - reference} split: spectral-ends keeps the blocks "
                       "with the largest intensities that can be reached from either end, so a smaller student "
                       "takes the hottest blocks at each end first.")
    if not 0 <= guess <= k:
        raise WrongAnswer(f"a counts blocks of a {k}-block student taken from the start: 0 .. {k}")
    proportional = reference * k / reference_layers
    if abs(guess - proportional) < 1 and guess != truth:
        raise WrongAnswer(f"spectral-ends does not keep the proportion of the {reference_layers}-block split: it "
                          "compares, for every a, the total intensity of the first a blocks plus the last K - a. "
                          "Walk inwards from both ends and see which values are largest")
    raise WrongAnswer("not the split with the largest total: add up the first a and the last K - a intensities "
                      "for each a = 0 .. K")
