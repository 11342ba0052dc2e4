"""Exercises with checkers: something for the learner to compute or predict at the end of each chapter.

Every checker takes the learner's ``answer`` (``None`` means "not answered yet"), computes the right
answer itself from the package (:mod:`spectralkd_tutorial.course.fourier`, :mod:`~spectralkd_tutorial.course.vision`,
:mod:`~spectralkd_tutorial.analysis.selection`, :mod:`~spectralkd_tutorial.losses`, ...) and returns a
:class:`Feedback`: "Correct! ..." or "Not yet: <a hint saying what is wrong>", never the answer itself.
The last expression of a notebook cell displays it; ``bool(feedback)`` is True only when correct.

    chapter 1  check_tone_bin, check_centre_of_mass, check_channel_bin0
    chapter 2  check_token_count, check_scaled_topk, check_same_as_last
    chapter 3  check_spectral_ends, check_uniform_layers, check_masked_signature
    chapter 4  check_parseval_weight, check_dc_error_weight, check_distinct_students
    chapter 5  check_pool_window, check_projection_parameters, check_ends_split
    chapter 6  check_paired_sd, check_verdict, check_seeds_for_half_mde
"""

from __future__ import annotations

from ._feedback import NOT_ANSWERED, Feedback
from .ch1_fourier import check_centre_of_mass, check_channel_bin0, check_tone_bin
from .ch2_vision import check_same_as_last, check_scaled_topk, check_token_count
from .ch3_text import check_masked_signature, check_spectral_ends, check_uniform_layers
from .ch4_distillation import check_dc_error_weight, check_distinct_students, check_parseval_weight
from .ch5_end_to_end import check_ends_split, check_pool_window, check_projection_parameters
from .ch6_study import check_paired_sd, check_seeds_for_half_mde, check_verdict

__all__ = [
    "Feedback",
    "NOT_ANSWERED",
    "check_tone_bin",
    "check_centre_of_mass",
    "check_channel_bin0",
    "check_token_count",
    "check_scaled_topk",
    "check_same_as_last",
    "check_spectral_ends",
    "check_uniform_layers",
    "check_masked_signature",
    "check_parseval_weight",
    "check_dc_error_weight",
    "check_distinct_students",
    "check_pool_window",
    "check_projection_parameters",
    "check_ends_split",
    "check_paired_sd",
    "check_verdict",
    "check_seeds_for_half_mde",
]
