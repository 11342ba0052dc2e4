"""``spectralkd`` command line: analyze, teacher, distill, experiment, demo, end-to-end, predict, evaluate, bench.

Settings are resolved in one order, each value in one place: the preset (``--preset``, default
``$SPECTRALKD_PRESET`` or ``quick``) <- a TOML file (``--config``) <- flags. Every run writes its
fully resolved ``config.toml`` beside its results, so ``--config OUT/config.toml`` reproduces it.
Run ``spectralkd <command> --help`` for the options and their defaults.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Sequence

from ..common.errors import SpectralKDError
from . import bench, commands, run_commands
from .flags import HelpFormatter
from .options import resolve_config  # noqa: F401  (re-exported: ``from spectralkd_tutorial.cli.app import resolve_config``)


def build_parser() -> argparse.ArgumentParser:
    """The ``spectralkd`` parser: each command module adds its own subcommands, in the order ``--help`` lists them."""
    parser = argparse.ArgumentParser(prog="spectralkd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_commands.add_parsers(sub, HelpFormatter)
    commands.add_parsers(sub, HelpFormatter)
    bench.add_parser(sub, HelpFormatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. The project's own errors (and bad values, missing files, I/O faults) print one
    line and exit 2; a real bug keeps its traceback."""
    import contextlib

    from ..common.distributed import is_main_process

    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["spectralkd", *(sys.argv[1:] if argv is None else argv)])
    quiet = contextlib.nullcontext() if is_main_process() else contextlib.redirect_stdout(open(os.devnull, "w"))
    try:
        with quiet:  # under a launcher only the main process prints (errors still reach stderr)
            return int(args.func(args) or 0)
    except (SpectralKDError, ValueError, FileNotFoundError) as error:
        print(f"spectralkd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"spectralkd {args.command}: error: cannot write or read{where}: {error.strerror or error}; "
              "free disk space or choose a writable --out", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spectralkd {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130




if __name__ == "__main__":  # python -m spectralkd_tutorial.cli.app (e.g. under accelerate launch -m)
    sys.exit(main())
