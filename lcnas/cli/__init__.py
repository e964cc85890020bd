"""The ``lcnas`` console script: one entry point with sub-commands."""

from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..errors import LcnasError
from ._commands import COMMANDS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``lcnas`` argument parser with one sub-parser per command (the command object in ``_command``)."""
    parser = argparse.ArgumentParser(
        prog="lcnas",
        description="Hardware-aware AutoML for fully dynamic networks (LC-Net: layer and channel skipping).",
    )
    parser.add_argument("--version", action="version", version=f"lcnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description)
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd, _parser=p)
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments; an unknown option is reported by the sub-command's parser (its usage and
    ``lcnas VERB: error: ...``), not the top-level one."""
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        args._parser.error(f"unrecognized arguments: {' '.join(extra)} (see lcnas {args.command} --help)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the ``lcnas`` console script on ``argv`` (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status: the command's own, 2 after an :class:`~lcnas.errors.LcnasError` (its
        message printed to stderr), 130 when interrupted.

    Raises:
        SystemExit: from argparse, for ``--help``, ``--version`` or unparseable arguments.
    """
    args = _parse(argv)
    try:
        return args._command.run(args)
    except LcnasError as e:
        print(f"lcnas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        how = str(e) or "a training run continues from its last epoch with --resume"
        print(f"lcnas {args.command}: interrupted; {how}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout left (``lcnas models | head``): not an error of the command;
        # stdout is pointed at devnull so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
