"""The project's own error types. The CLI turns each into a one-line message and exit code 2;
anything else (a real bug) keeps its traceback."""

from __future__ import annotations


class SpectralKDError(Exception):
    """Base class: the message names the input and the fix."""


class UsageError(SpectralKDError, ValueError):
    """A bad argument or config value, caught before any expensive work."""


class RunDirectoryError(SpectralKDError, ValueError):
    """A run directory that holds another run, is locked by another process, or cannot be written."""


class CheckpointError(SpectralKDError, ValueError):
    """A checkpoint that cannot be read (truncated, from other settings)."""


class TrainingError(SpectralKDError, FloatingPointError):
    """Training cannot go on (e.g. a non-finite loss)."""
