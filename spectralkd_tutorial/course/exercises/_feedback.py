"""What a checker returns, and how it reads a learner's answer.

A checker computes the right answer from the package itself, compares, and returns a
:class:`Feedback`: ``correct`` is True, False (with a hint that says *what* is wrong without giving
the answer away) or None (the answer is still ``None``: "not answered yet"). Shown as the last
expression of a notebook cell, a Feedback displays its message; ``bool(feedback)`` is True only
when the answer is correct.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable

NOT_ANSWERED = "Not answered yet: replace `answer = None` with your answer and run the cell again."


@dataclass(frozen=True)
class Feedback:
    """``correct``: True / False / None (not answered); ``message``: what the learner reads."""

    correct: bool | None
    message: str

    def __bool__(self) -> bool:
        return self.correct is True

    @property
    def answered(self) -> bool:
        return self.correct is not None

    def __str__(self) -> str:
        return self.message

    __repr__ = __str__


class WrongAnswer(Exception):
    """Raised inside a checker to reject an answer with ``hint`` (turned into a Feedback)."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


def correct(message: str) -> Feedback:
    return Feedback(True, f"Correct! {message}")


def wrong(hint: str) -> Feedback:
    return Feedback(False, f"Not yet: {hint}")


def checker(function: Callable[..., Feedback]) -> Callable[..., Feedback]:
    """``answer=None`` -> "not answered yet"; a :class:`WrongAnswer` raised inside -> its hint."""

    @functools.wraps(function)
    def wrapper(answer: Any = None, *args: Any, **kwargs: Any) -> Feedback:
        if answer is None:
            return Feedback(None, NOT_ANSWERED)
        try:
            return function(answer, *args, **kwargs)
        except WrongAnswer as rejection:
            return wrong(rejection.hint)

    return wrapper


# --------------------------------------------------------------------------------------------
# Reading answers
# --------------------------------------------------------------------------------------------

def _scalar(answer: Any) -> Any:
    """Unwrap one-element NumPy arrays/scalars and tensors (``np.argmax(...)``, ``tensor.sum()``)."""
    if hasattr(answer, "item") and tuple(getattr(answer, "shape", (0, 0))) in ((), (1,)):
        return answer.item()
    return answer


def as_number(answer: Any, what: str = "a number") -> float:
    """A real number from an int, float, Fraction, NumPy/torch scalar or a string like ``"5/11"``."""
    answer = _scalar(answer)
    if isinstance(answer, str):
        try:
            answer = Fraction(answer.strip().replace(" ", ""))
        except (ValueError, ZeroDivisionError):
            raise WrongAnswer(f"give {what}; could not read {answer!r} as a number") from None
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        if isinstance(answer, numbers.Complex):
            raise WrongAnswer(f"give {what}: a real number, not a complex one")
        raise WrongAnswer(f"give {what}, not a {type(answer).__name__}")
    value = float(answer)
    if not math.isfinite(value):
        raise WrongAnswer(f"give {what}: a finite value")
    return value


def as_complex(answer: Any, what: str = "a complex number") -> complex:
    """A complex number (Python writes i as j: ``0.5-2j``), from any numeric scalar or a string."""
    answer = _scalar(answer)
    if isinstance(answer, str):
        try:
            answer = complex(answer.strip().replace(" ", "").replace("i", "j"))
        except ValueError:
            raise WrongAnswer(f"give {what} such as 0.5-2j; could not read {answer!r}") from None
    if isinstance(answer, bool) or not isinstance(answer, numbers.Complex):
        raise WrongAnswer(f"give {what} such as 0.5-2j, not a {type(answer).__name__}")
    return complex(answer)


def as_int(answer: Any, what: str = "a whole number") -> int:
    """A whole number; a float is accepted when it is integral (``8.0``)."""
    value = as_number(answer, what)
    if value != int(value):
        raise WrongAnswer(f"give {what}: a whole number, not {value:g}")
    return int(value)


def as_int_list(answer: Any, what: str = "a list of layer numbers") -> list[int]:
    """A list of whole numbers from any iterable (list, tuple, set, range, array, tensor)."""
    if hasattr(answer, "tolist"):
        answer = answer.tolist()
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
        raise WrongAnswer(f"give {what}, e.g. [1, 2, 3]")
    return [as_int(item, what) for item in answer]


def close(a: complex | float, b: complex | float, rel: float = 1e-3, abs_tol: float = 1e-6) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_tol)
