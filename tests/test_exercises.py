"""Exercise checkers: each accepts the right answer, rejects typical wrong ones with the right hint,
and no hint contains the answer. The right answers here are worked out independently of the
checkers (closed forms, brute force, NumPy); the notebooks' exercise cells and folded solutions are
executed too: unanswered cells say "not answered yet", every solution passes its checker.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from fractions import Fraction
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from spectralkd_tutorial.course import exercises as ex
from spectralkd_tutorial.course.exercises import Feedback

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _leaks(message: str, forms) -> list[str]:
    """The forms of the answer that appear in ``message`` as a whole number/word."""
    return [form for form in forms
            if re.search(rf"(?<![\w.]){re.escape(str(form))}(?!\w|\.\d)", message)]


def assert_hint(feedback: Feedback, expected: str, *answer_forms) -> None:
    assert isinstance(feedback, Feedback)
    assert feedback.correct is False and not feedback, feedback.message
    assert feedback.message.startswith("Not yet:")
    assert expected in feedback.message, feedback.message
    assert not _leaks(feedback.message, answer_forms), f"hint gives the answer away: {feedback.message}"


def assert_correct(feedback: Feedback) -> None:
    assert feedback.correct is True and bool(feedback), feedback.message
    assert feedback.message.startswith("Correct!")


# --------------------------------------------------------------------------------------------
# The common protocol
# --------------------------------------------------------------------------------------------

CHECKERS = [getattr(ex, name) for name in ex.__all__ if name.startswith("check_")]
#: keyword arguments for checkers whose question has no default
REQUIRED = {
    "check_scaled_topk": dict(intensities=[0.1, 0.5, 0.2, 0.3], layer=1, num_student_layers=2),
    "check_same_as_last": dict(intensities=[0.1, 0.5, 0.2, 0.3], num_student_layers=2),
    "check_distinct_students": dict(intensities=[0.1, 0.5, 0.2, 0.3], num_student_layers=2),
    "check_ends_split": dict(intensities=[0.1, 0.5, 0.2, 0.3, 0.4], num_student_layers=2, reference_layers=3),
    "check_spectral_ends": dict(intensities=[1.0, 0.5, 0.2, 0.9], num_student_layers=2),
    "check_masked_signature": dict(amplitudes=[[1.0, 2.0]], mask=[[1, 0]]),
    "check_paired_sd": dict(a=[0.9, 0.8, 0.85], b=[0.88, 0.79, 0.86]),
    "check_verdict": dict(low=-0.1, high=0.2),
}


def test_every_chapter_has_checkers():
    assert len(CHECKERS) == 18
    for chapter in range(1, 7):
        module = next(m for m in ex.__dict__.values()
                      if getattr(m, "__name__", "").startswith(f"spectralkd_tutorial.course.exercises.ch{chapter}_"))
        assert 2 <= len([n for n in module.__all__ if n.startswith("check_")]) <= 4


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
def test_none_means_not_answered(check):
    feedback = check(None, **REQUIRED.get(check.__name__, {}))
    assert feedback.correct is None and not feedback and not feedback.answered
    assert "not answered yet" in feedback.message.lower()
    assert repr(feedback) == str(feedback) == feedback.message  # what a notebook cell displays


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
def test_unreadable_answers_get_a_hint_not_a_traceback(check):
    feedback = check({"not": "an answer"}, **REQUIRED.get(check.__name__, {}))
    assert feedback.correct is False and feedback.message.startswith("Not yet: ")


# --------------------------------------------------------------------------------------------
# Chapter 1
# --------------------------------------------------------------------------------------------

def test_tone_bin():
    k = 12 * 32 // 48  # cycles per window = f * N / fs
    for answer in (k, np.int64(k), torch.tensor(k), float(k)):
        assert_correct(ex.check_tone_bin(answer, frequency_hz=12, sample_rate_hz=48, num_samples=32))
    assert_hint(ex.check_tone_bin(k + 1), "off by one: bins are numbered from 0", k)
    assert_hint(ex.check_tone_bin(k - 1), "off by one", k)
    assert_hint(ex.check_tone_bin(32 - k), "mirror bin", k)
    assert_hint(ex.check_tone_bin(12), "frequency in Hz", k)
    assert_hint(ex.check_tone_bin(40), "bins are numbered 0 .. N-1", k)
    assert_hint(ex.check_tone_bin(3), "not the largest", k)
    assert_hint(ex.check_tone_bin(8.5), "whole number", k)
    assert_correct(ex.check_tone_bin(5, frequency_hz=10, sample_rate_hz=64, num_samples=32))  # 10 * 32 / 64


def test_centre_of_mass():
    target = 3 / 2j  # 3 sin = (3/2i) e^{i theta} - (3/2i) e^{-i theta}: winding keeps the first arrow
    forms = ("1.5", "-1.5j", "1.5j")
    for answer in (target, -1.5j, "-1.5j", "-1.5i", complex(1e-12, -1.5)):
        assert_correct(ex.check_centre_of_mass(answer, amplitude=3, cycles=4, num_samples=16, wave="sin"))
    assert_hint(ex.check_centre_of_mass(target * 16), "N times too large: the centre of mass is the mean", *forms)
    assert_hint(ex.check_centre_of_mass(24), "N times too large", *forms)
    assert_hint(ex.check_centre_of_mass(1.5j), "turns clockwise", *forms)
    assert_hint(ex.check_centre_of_mass(1.5), "right distance from the origin, wrong direction", *forms)
    assert_hint(ex.check_centre_of_mass(3), "full amplitude", *forms)
    assert_hint(ex.check_centre_of_mass(0.2 + 0.1j), "not the centre of mass", *forms)
    assert_correct(ex.check_centre_of_mass(2.0, amplitude=4, cycles=2, num_samples=8, wave="cos"))


def test_channel_bin0():
    hidden = (3, -1, 4, 1, -5, 9, 2, 7)
    target = abs(sum(hidden)) / len(hidden)
    assert_correct(ex.check_channel_bin0(target, hidden=hidden))
    assert_correct(ex.check_channel_bin0("5/2", hidden=hidden))
    assert_hint(ex.check_channel_bin0(sum(hidden)), "divides by the width H", "2.5")
    assert_hint(ex.check_channel_bin0(np.mean(np.abs(hidden))), "that is the mean of |x_h|", "2.5")
    assert_hint(ex.check_channel_bin0(-target), "never negative", "2.5")
    assert_hint(ex.check_channel_bin0(1.0), "not bin 0's amplitude", "2.5")
    assert_correct(ex.check_channel_bin0(1.0, hidden=(1, -3, 0, -2)))  # |(1 - 3 - 2) / 4| = 1


# --------------------------------------------------------------------------------------------
# Chapter 2
# --------------------------------------------------------------------------------------------

def test_token_count():
    deit = (224 // 16) ** 2 + 2  # 196 patches + [CLS] + distillation token
    assert_correct(ex.check_token_count(deit, image_size=224, patch_size=16, distilled=True))
    assert_hint(ex.check_token_count(196), "patch grid alone", deit)
    assert_hint(ex.check_token_count(deit - 1), "one short: count every prefix token", deit)
    assert_hint(ex.check_token_count(deit + 1), "one too many", deit)
    assert_hint(ex.check_token_count(14), "along one side", deit)
    assert_hint(ex.check_token_count(224 * 224 // 16), "patch_size x patch_size pixels", deit)
    assert_hint(ex.check_token_count(50), "add the prefix tokens", deit)
    vit = 197  # ViT: [CLS] only
    assert_correct(ex.check_token_count(vit, distilled=False))
    assert_hint(ex.check_token_count(196, distilled=False), "patch grid alone", vit)
    assert_correct(ex.check_token_count(4 * 4 + 1, image_size=8, patch_size=2, distilled=False))


def _intensity_numpy(hidden: np.ndarray) -> float:
    """Independent of the package: mean over bins k < H//2 + 1 and over tokens of |FFT(x)/H|."""
    width = hidden.shape[-1]
    return float(np.abs(np.fft.fft(hidden, axis=-1) / width)[..., : width // 2 + 1].mean())


def _topk(intensities, k):
    blocks = range(1, len(intensities))
    return sorted(sorted(blocks, key=lambda layer: (-intensities[layer], layer))[:k])


RAISED = [0.30, 0.42, 0.35, 0.41, 0.52, 0.61, 0.75]  # chapter 2, exercise 2


def test_scaled_topk():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 10, 16))
    assert math.isclose(_intensity_numpy(2 * hidden), 2 * _intensity_numpy(hidden))  # the intensity is linear
    scaled = list(RAISED)
    scaled[2] *= 2
    truth, before = _topk(scaled, 3), _topk(RAISED, 3)
    assert truth == [2, 5, 6] and before == [4, 5, 6]
    forms = _forms(truth)

    def check(answer, **kwargs):
        return ex.check_scaled_topk(answer, **{"intensities": RAISED, "layer": 2, **kwargs})

    for answer in (truth, tuple(reversed(truth)), np.array(truth), torch.tensor(truth)):
        assert_correct(check(answer))
    assert_hint(check(before), "that is the choice before the scaling", *forms)
    assert_hint(check([1, 5, 6]), "what is block 2's intensity after the scaling", *forms)
    assert_hint(check([2, 4, 6]), "recompute block 2's intensity", *forms)
    assert_hint(check([2, 5]), "choose exactly 3", *forms)
    assert_hint(check([0, 5, 6]), "layer 0 (the embedding output) is not a candidate", *forms)
    # scaled by 1.1 the layer stays out, and guessing it in is the "energy, not size" mistake
    assert_correct(check(before, factor=1.1))
    assert_hint(check([2, 5, 6], factor=1.1), "not among the 3 largest", *_forms(before))
    # a factor that pushes another layer out of a 2-block choice
    assert_correct(check(_topk([v * (3 if i == 1 else 1) for i, v in enumerate(RAISED)], 2), layer=1, factor=3,
                         num_student_layers=2))


SPIKED = [0.5, 0.6, 0.7, 0.75, 1.4, 0.8, 0.9, 1.0, 1.1]  # chapter 2, exercise 3: rising, one spike at block 4


def _uniform(k, total):
    return [int(math.floor(i * total / k + 0.5)) for i in range(1, k + 1)]


def test_same_as_last():
    k, total = 4, len(SPIKED) - 1
    last = list(range(total - k + 1, total + 1))
    chosen = {"spectral-topk": _topk(SPIKED, k), "spectral-ends": _ends_by_brute_force(SPIKED, k),
              "uniform": _uniform(k, total), "first": list(range(1, k + 1))}
    truth = {name for name, layers in chosen.items() if layers == last}
    assert truth == {"spectral-ends"}

    def check(answer, curve=SPIKED):
        return ex.check_same_as_last(answer, intensities=curve, num_student_layers=k)

    forms = ("spectral-ends",)
    assert_correct(check(["spectral-ends"]))
    assert_correct(check("Spectral-Ends"))
    assert_correct(check(("spectral-ends",)))
    assert_hint(check(["spectral-ends", "spectral-topk"]), "1 of the 4 verdicts wrong; recheck the rule that takes "
                "the K largest", *forms)
    assert_hint(check([]), "work out the totals", *forms)
    assert_hint(check(["uniform"]), "2 of the 4 verdicts wrong", *forms)
    assert_hint(check(["spectral-ends", "uniform"]), "spaces its picks evenly", *forms)
    assert_hint(check(["spectral-ends", "first"]), "takes blocks 1 .. K", *forms)
    unknown = check(["last"])  # lists the four names, all of them
    assert unknown.correct is False and "unknown name" in unknown.message
    assert all(name in unknown.message for name in ex.ch2_vision.COMPARED_STRATEGIES)
    # without the spike the curve rises steadily and both spectral rules return `last`; a U gives neither
    rising = sorted(SPIKED)
    assert _topk(rising, k) == _ends_by_brute_force(rising, k) == last
    assert_correct(check(["spectral-topk", "spectral-ends"], curve=rising))
    assert_hint(check(["spectral-ends"], curve=rising), "are all of them among the last K", "spectral-topk")
    u_shape = [1.0, 0.9, 0.8, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4]
    assert _ends_by_brute_force(u_shape, k) != last and _topk(u_shape, k) != last
    assert_correct(check([], curve=u_shape))


# --------------------------------------------------------------------------------------------
# Chapter 3
# --------------------------------------------------------------------------------------------

TEACHER = [5.0, 3.1, 2.9, 1.0, 4.0, 1.2, 1.1, 2.5, 3.0]  # layer 0 .. 8


def _ends_by_brute_force(intensities, k):
    blocks = len(intensities) - 1
    splits = [list(range(1, a + 1)) + list(range(blocks - (k - a) + 1, blocks + 1)) for a in range(k + 1)]
    return max(splits, key=lambda layers: sum(intensities[layer] for layer in layers))


def _forms(layers):
    return (", ".join(map(str, layers)), ",".join(map(str, layers)), str(layers))


def test_spectral_ends():
    truth = _ends_by_brute_force(TEACHER, 4)
    assert truth == [1, 2, 7, 8]
    topk = sorted(sorted(range(1, 9), key=lambda layer: -TEACHER[layer])[:4])
    assert topk != truth

    def check(answer):
        return ex.check_spectral_ends(answer, intensities=TEACHER, num_student_layers=4)

    for answer in (truth, tuple(reversed(truth)), np.array(truth), set(truth)):
        assert_correct(check(answer))
    forms = _forms(truth)
    assert_hint(check(topk), "you picked the hottest layers, but spectral-ends keeps a first block and a last",
                *forms)
    assert_hint(check([0, 1, 2, 8]), "layer 0 (the embedding output) is not a candidate", *forms)
    assert_hint(check([1, 2, 8]), "choose exactly 4 teacher layers", *forms)
    assert_hint(check([1, 1, 7, 8]), "once only", *forms)
    assert_hint(check([1, 3, 7, 8]), "not of that form", *forms)
    assert_hint(check([1, 6, 7, 8]), "not the one with the largest total intensity", *forms)
    assert_hint(check([1, 2, 8, 9]), "numbered 1 .. 8", *forms)
    assert_hint(check("1, 2, 7, 8"), "list of teacher layers", *forms)


def test_uniform_layers():
    truth = [int(math.floor(i * 12 / 5 + 0.5)) for i in range(1, 6)]  # nearest layer, no ties here
    assert truth == [2, 5, 7, 10, 12]
    forms = _forms(truth)
    assert_correct(ex.check_uniform_layers(truth, num_student_layers=5, num_teacher_layers=12))
    assert_correct(ex.check_uniform_layers([3, 6, 9, 12], num_student_layers=4, num_teacher_layers=12))
    assert_hint(ex.check_uniform_layers([math.floor(i * 12 / 5) for i in range(1, 6)]), "rounded down", *forms)
    assert_hint(ex.check_uniform_layers([math.ceil(i * 12 / 5) for i in range(1, 6)]), "rounded up", *forms)
    assert_hint(ex.check_uniform_layers([0, 2, 5, 7, 10]), "layer 0 (the embedding output)", *forms)
    assert_hint(ex.check_uniform_layers([3, 6, 9, 12]), "choose exactly 5", *forms)
    assert_hint(ex.check_uniform_layers([2, 5, 7, 10, 11]), "last pick is the teacher's last block", *forms)
    assert_hint(ex.check_uniform_layers([2, 5, 8, 10, 12]), "rounded to the nearest layer", *forms)


def test_masked_signature():
    amplitudes = np.array([[2, 4, 6, 9], [8, 3, 7, 5]], dtype=float)
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
    truth = amplitudes[mask == 1].mean()

    def check(answer):
        return ex.check_masked_signature(answer, amplitudes=amplitudes.tolist(), mask=mask.tolist())

    assert_correct(check(truth))
    assert_correct(check(torch.tensor(truth)))
    assert_hint(check(amplitudes.mean()), "averaged the padded positions too", truth)
    assert_hint(check(np.mean([amplitudes[i][mask[i] == 1].mean() for i in range(2)])),
                "mean of the sentences' means", truth)
    assert_hint(check(amplitudes[mask == 1].sum() / amplitudes.size), "divided by every position", truth)
    assert_hint(check(amplitudes[mask == 1].sum()), "that is a sum", truth)
    assert_hint(check(3), "not the masked mean", truth)


# --------------------------------------------------------------------------------------------
# Chapter 4
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seq_len", [20, 15, 32])
def test_parseval_weight(seq_len):
    kept = seq_len // 2 + 1
    truth = Fraction(seq_len, 4 * kept)
    forms = (f"{float(truth):.2f}", f"{float(truth):.3f}", f"{float(truth):.4f}", str(truth),
             f"{seq_len}/{4 * kept}")
    assert_correct(ex.check_parseval_weight(float(truth), seq_len=seq_len))
    assert_correct(ex.check_parseval_weight(str(truth), seq_len=seq_len))
    assert_hint(ex.check_parseval_weight(0.5, seq_len=seq_len), "large-L limit", *forms)
    assert_hint(ex.check_parseval_weight(2 * float(truth), seq_len=seq_len), "too large", *forms)
    assert_hint(ex.check_parseval_weight(1, seq_len=seq_len), "Parseval keeps the energy", *forms)
    assert_hint(ex.check_parseval_weight(round(float(truth), 2) + 0.002, seq_len=seq_len),
                "three significant digits", *forms)
    assert_hint(ex.check_parseval_weight(0.3, seq_len=seq_len), "not the weight", *forms)


def test_dc_error_weight():
    truth = Fraction(15, 2 * (15 // 2 + 1))  # L / 2K: pure DC, counted once in the kept columns
    forms = ("0.9375", "0.94", "0.938", "15/16")
    assert_correct(ex.check_dc_error_weight(float(truth), seq_len=15))
    assert_correct(ex.check_dc_error_weight("15/16", seq_len=15))
    assert_hint(ex.check_dc_error_weight(float(truth) / 2, seq_len=15), "error with no DC part", *forms)
    assert_hint(ex.check_dc_error_weight(1.0, seq_len=15), "not L/2", *forms)
    assert_hint(ex.check_dc_error_weight(0.5, seq_len=15), "roughly the weight of a random error", *forms)
    assert_hint(ex.check_dc_error_weight(0.93, seq_len=15), "three significant digits", *forms)
    assert_hint(ex.check_dc_error_weight(0.2, seq_len=15), "not the ratio", *forms)
    assert_correct(ex.check_dc_error_weight(Fraction(16, 18), seq_len=16))


WORKSHOP_LIKE = [0.020, 0.026, 0.025, 0.027, 0.030, 0.028, 0.033]  # chapter 4, exercise 3


def _pairs_by_hand(strategy, intensities, k, seed):
    """Each strategy's (student, teacher) pairs from its definition (selection.py's docstring)."""
    import random

    total = len(intensities) - 1
    blocks = list(range(1, total + 1))
    layers = {"spectral-topk": _topk(intensities, k), "spectral-ends": _ends_by_brute_force(intensities, k),
              "uniform": _uniform(k, total), "reverse": _uniform(k, total)[::-1], "last": blocks[-k:],
              "first": blocks[:k], "random": sorted(random.Random(seed).sample(blocks, k)), "none": []}[strategy]
    return tuple(enumerate(layers, start=1))


def test_distinct_students():
    strategies = ["spectral-topk", "spectral-ends", "uniform", "last", "first", "random", "reverse", "none"]
    truth = len({_pairs_by_hand(s, WORKSHOP_LIKE, 3, 0) for s in strategies})
    assert truth == 6  # topk = ends = last on this rising curve

    def check(answer, **kwargs):
        return ex.check_distinct_students(answer, **{"intensities": WORKSHOP_LIKE, **kwargs})

    forms = (str(truth),)
    assert_correct(check(truth))
    assert_correct(check(float(truth)))
    assert_hint(check(8), "some strategies pick exactly the same teacher blocks", *forms)
    assert_hint(check(truth - 1), "one too few", *forms)
    assert_hint(check(7), "too many", *forms)
    assert_hint(check(3), "too few", *forms)
    assert_hint(check(0), "one run each per seed", *forms)
    assert_hint(check(12), "one run each per seed", *forms)
    # other curves, other seeds: the count follows the mappings
    for curve, k, seed in ((sorted(WORKSHOP_LIKE, reverse=True), 3, 1), ([1.0, 0.9, 0.2, 0.1, 0.3, 1.1], 2, 2),
                           (WORKSHOP_LIKE, 2, 5)):
        expected = len({_pairs_by_hand(s, curve, k, seed) for s in strategies})
        assert_correct(check(expected, intensities=curve, num_student_layers=k, seed=seed))


# --------------------------------------------------------------------------------------------
# Chapter 5
# --------------------------------------------------------------------------------------------

def _window(j, teacher_width, student_width):
    return list(range(math.floor(j * teacher_width / student_width),
                      math.ceil((j + 1) * teacher_width / student_width)))


def test_pool_window():
    truth = _window(3, 1024, 768)
    assert truth == [4, 5]
    forms = _forms(truth)
    assert_correct(ex.check_pool_window(truth, teacher_width=1024, student_width=768, channel=3))
    for j in (0, 2, 4, 767):
        assert_correct(ex.check_pool_window(_window(j, 1024, 768), channel=j))
    assert_correct(ex.check_pool_window([6, 7, 8], teacher_width=12, student_width=4, channel=2))
    assert_hint(ex.check_pool_window([c + 1 for c in truth]), "channels are numbered from 0", *forms)
    assert_hint(ex.check_pool_window([3, 4]), "do not advance one channel at a time", *forms)
    assert_hint(ex.check_pool_window([4, 5, 6]), "wrong number of channels", *forms)
    assert_hint(ex.check_pool_window([4]), "wrong number of channels", *forms)
    assert_hint(ex.check_pool_window([6, 7]), "starts at the wrong channel", *forms)
    assert_hint(ex.check_pool_window([1023, 1024]), "numbered 0 .. 1023", *forms)


def test_projection_parameters():
    truth = 768 * 1024 + 1024
    forms = (truth, f"{truth:,}")
    assert_correct(ex.check_projection_parameters(truth, student_width=768, teacher_width=1024))
    assert_hint(ex.check_projection_parameters(768 * 1024), "W_p alone", *forms)
    assert_hint(ex.check_projection_parameters(768 * 1024 + 768), "one entry per OUTPUT channel", *forms)
    assert_hint(ex.check_projection_parameters(1024 * 1024 + 1024), "student width to the teacher width", *forms)
    assert_hint(ex.check_projection_parameters(2 * truth), "one layer pair only", *forms)
    assert_hint(ex.check_projection_parameters(5), "count the entries", *forms)


# chapter 5, exercise 3: a 24-block U-shaped curve (layer 0 first), hot ends, cool middle
ROBERTA_LIKE = ([1.0] + [1.30, 1.20, 1.10, 0.90, 0.88, 0.86, 0.84, 0.82, 0.80]
                + [0.40, 0.38, 0.36, 0.34, 0.32, 0.30, 0.31, 0.33, 0.35, 0.37, 0.39, 0.70, 1.25, 1.40, 1.50])


def _first_count(intensities, k):
    return sum(1 for layer in _ends_by_brute_force(intensities, k) if layer <= k)


def test_ends_split():
    assert _ends_by_brute_force(ROBERTA_LIKE, 12) == list(range(1, 10)) + [22, 23, 24]  # 9 + 3, like the blog's
    truth = _first_count(ROBERTA_LIKE, 6)
    assert truth == 3 and truth != round(9 * 6 / 12)

    def check(answer, **kwargs):
        return ex.check_ends_split(answer, **{"intensities": ROBERTA_LIKE, **kwargs})

    forms = (str(truth),)
    assert_correct(check(truth))
    assert_correct(check(np.int64(truth)))
    for proportional in (4, 5):
        assert_hint(check(proportional), "does not keep the proportion", *forms)
    assert_hint(check(1), "not the split with the largest total", *forms)
    assert_hint(check(7), "0 .. 6", *forms)
    assert_hint(check(2.5), "whole number", *forms)
    for k in (2, 4, 8):
        assert_correct(check(_first_count(ROBERTA_LIKE, k), num_student_layers=k))


# --------------------------------------------------------------------------------------------
# The notebooks: the exercise cells run, unanswered they say so, and every solution passes
# --------------------------------------------------------------------------------------------

def _tagged(notebook, tag):
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def _run(source: str, namespace: dict):
    """exec a cell and return the value of its last expression (what Jupyter displays)."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace) if last else None


def _solution_code(markdown: str) -> str:
    match = re.search(r"<details><summary>Solution</summary>(.*?)</details>", markdown, re.S)
    assert match, "a solution is folded in <details><summary>Solution</summary> ... </details>"
    code = re.search(r"```python\n(.*?)```", match.group(1), re.S)
    assert code, "the solution shows the code that computes the answer"
    return code.group(1)


@pytest.fixture(params=NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def notebook(request):
    return nbformat.read(request.param, as_version=4)


def test_exercises_come_last_and_are_complete(notebook):
    tags = [tuple(cell.metadata.get("tags", [])) for cell in notebook.cells]
    start = tags.index(("exercises",))
    assert notebook.cells[start].source.startswith("## Exercises")
    end = tags.index(("takeaways",))  # only the chapter's "What you learned" follows the exercises
    assert all(tag == ("takeaways",) for tag in tags[end:])
    section = tags[start + 1:end]
    assert len(section) % 3 == 0 and 2 <= len(section) // 3 <= 4
    assert all(triple == (("exercise-question",), ("exercise",), ("solution",))
               for triple in itertools.zip_longest(*[iter(section)] * 3))
    for cell in _tagged(notebook, "exercise"):
        assert cell.cell_type == "code" and re.search(r"^answer = None\b", cell.source, re.M)
        assert "from spectralkd_tutorial.course.exercises import check_" in cell.source


def test_exercise_cells_run_unanswered_and_accept_their_solutions(notebook):
    for cell, solution in zip(_tagged(notebook, "exercise"), _tagged(notebook, "solution")):
        namespace: dict = {}
        unanswered = _run(cell.source, namespace)
        assert isinstance(unanswered, Feedback) and unanswered.correct is None, cell.source
        exec(_solution_code(solution.source), namespace)
        answered = _run(cell.source.replace("answer = None", "pass  # answer from the solution"), namespace)
        assert answered.correct is True, f"{cell.source}\n-> {answered.message}"


# --------------------------------------------------------------------------------------------
# chapter 6
# --------------------------------------------------------------------------------------------

def test_paired_sd():
    a, b = [0.9413, 0.9302, 0.9521], [0.9380, 0.9251, 0.9507]
    diffs = np.array(a) - np.array(b)
    truth = float(np.std(diffs, ddof=1))  # independent: NumPy
    check = lambda answer: ex.check_paired_sd(answer, a=a, b=b)
    assert_correct(check(truth))
    assert_hint(check(float(np.std(diffs))), "n - 1", f"{truth:.4g}")
    assert_hint(check(float(np.std(a, ddof=1))), "spread of one strategy", f"{truth:.4g}")
    assert_hint(check(-truth), "never negative", f"{truth:.4g}")


@pytest.mark.parametrize("low, high, truth", [(0.1, 0.4, "helps"), (-0.5, -0.2, "hurts"),
                                              (-0.12, 0.31, "no difference detectable")])
def test_verdict(low, high, truth):
    assert_correct(ex.check_verdict(truth, low=low, high=high))
    for other in {"helps", "hurts", "no difference detectable"} - {truth}:
        feedback = ex.check_verdict(other, low=low, high=high)
        assert feedback.correct is False and truth not in feedback.message.replace(other, "")
    assert_hint(ex.check_verdict("maybe", low=low, high=high), "one of")


def test_seeds_for_half_mde():
    from scipy.stats import t

    def factor(n):  # independent: scipy directly
        return (t.ppf(0.975, n - 1) + t.ppf(0.8, n - 1)) / math.sqrt(n)

    truth = next(n for n in range(4, 100) if factor(n) <= factor(3) / 2)
    assert_correct(ex.check_seeds_for_half_mde(truth, seeds=3))
    assert_hint(ex.check_seeds_for_half_mde(12, seeds=3), "four times the seeds", str(truth))
    assert_hint(ex.check_seeds_for_half_mde(truth - 1, seeds=3), "still more than half", str(truth))
    assert_hint(ex.check_seeds_for_half_mde(2, seeds=3), "not smaller", str(truth))
