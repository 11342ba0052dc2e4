"""The `spectralkd` command line: ``app`` builds the parser and runs a command; one module per group of commands."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """The ``spectralkd`` entry point (imports the parser only when called, so importing the package stays cheap)."""
    from .app import main as run

    return run(argv)
