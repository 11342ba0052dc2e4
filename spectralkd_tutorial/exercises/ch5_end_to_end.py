"""Chapter 5 exercises: channel pooling's windows, a projection's size, and what a student keeps.

    pooled channel j  = mean of teacher channels floor(j*H_t/H_s) .. ceil((j+1)*H_t/H_s) - 1
    projection        X_s W_p^T + b_p,   W_p in R^{H_t x H_s},  b_p in R^{H_t}
    parameter ratio   = count(student) / count(teacher)

The right answers come from :func:`spectralkd_tutorial.losses.pool_teacher_channels` (pooling the
identity matrix shows each window), :class:`spectralkd_tutorial.losses.LayerProjections`, and
:func:`spectralkd_tutorial.models.student_from_teacher` on a RoBERTa built on the ``meta`` device
(shapes only, no memory), counted with :func:`spectralkd_tutorial.models.count_parameters`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import torch

from ..losses import LayerProjections, pool_teacher_channels
from ..models import count_parameters, student_from_teacher
from ._feedback import Feedback, WrongAnswer, as_int, as_int_list, as_number, checker, correct

__all__ = ["ROBERTA_LARGE", "check_pool_window", "check_projection_parameters", "check_parameter_ratio"]

#: ``roberta-large``'s config.json (the sizes that decide its parameter count) and CLINC150 plus's labels.
ROBERTA_LARGE: Mapping[str, int] = {
    "vocab_size": 50265, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
    "intermediate_size": 4096, "max_position_embeddings": 514, "type_vocab_size": 1, "num_labels": 151,
}


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


@functools.lru_cache(maxsize=4)
def _counts(kept_blocks: int, config_items: tuple[tuple[str, int], ...]) -> tuple[int, int]:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from ..models import quiet_transformers

    quiet_transformers()
    config = RobertaConfig(**dict(config_items))
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised for real
        teacher = RobertaForSequenceClassification(config)
        student = student_from_teacher(teacher, list(range(1, kept_blocks + 1)))
    return count_parameters(student), count_parameters(teacher)


@checker
def check_parameter_ratio(answer: Any, *, kept_blocks: int = 6, config: Mapping[str, int] = ROBERTA_LARGE) -> Feedback:
    """``count(student) / count(teacher)`` for a student made of ``kept_blocks`` of the teacher's blocks
    (DistilBERT style: the teacher's embeddings and classification head are kept), within 0.005."""
    student, teacher = _counts(int(kept_blocks), tuple(sorted(config.items())))
    truth = student / teacher
    guess = as_number(answer, "the ratio, a fraction between 0 and 1")
    blocks = int(config["num_hidden_layers"])
    if abs(guess - truth) <= 0.005:
        return correct(f"{student:,} / {teacher:,} = {truth:.4f}. More than {kept_blocks}/{blocks} of the "
                       "teacher, because the embeddings and the head come along whole; the blocks are what "
                       "shrink.")
    if 1 < guess <= 100 and abs(guess / 100 - truth) <= 0.005:
        raise WrongAnswer("give a fraction (e.g. 0.5), not a percentage")
    if not 0 < guess <= 1:
        raise WrongAnswer("give a fraction of the teacher's parameters, between 0 and 1")
    if math.isclose(guess, kept_blocks / blocks, rel_tol=0.01):
        raise WrongAnswer("that counts the blocks only: the student also keeps the teacher's embeddings "
                          "(vocabulary x H, positions x H) and its classification head")
    if guess > truth:
        raise WrongAnswer("too high: check your count of one block (attention: four H x H maps with biases; "
                          "feed-forward: H x 4H and 4H x H with biases; two LayerNorms)")
    raise WrongAnswer("too low: did you include the embeddings (word, position, token type, LayerNorm) and "
                      "the classification head (dense H x H, then H x labels)?")
