"""Entry point of the ``segwise`` command.

The verb contract: each module named in :data:`VERBS` defines

- ``NAME: str`` - the verb, e.g. ``"train"``;
- ``HELP: str`` - one line for ``segwise --help``;
- ``DESCRIPTION: str`` - the longer text shown by ``segwise VERB --help``;
- ``add_arguments(parser: argparse.ArgumentParser) -> None``;
- ``run(args: argparse.Namespace) -> int`` - the exit code.

Verb modules import heavy libraries (torch, ...) inside ``run`` only, so ``segwise --help``
stays fast. Errors meant for the user are raised as :class:`UserError` (or ``ValueError`` /
``FileNotFoundError``) and printed without a traceback, with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from segwise import __version__

__all__ = ["VERBS", "UserError", "build_parser", "main"]

# Explicit, ordered list: no registration by import side effects.
VERBS: tuple[str, ...] = ("train", "evaluate", "predict", "export", "demo", "models", "data")


class UserError(Exception):
    """An error caused by the user's input; printed as one clear message, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segwise",
        description="Image segmentation: train, evaluate, predict and export models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"segwise {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module_name in VERBS:
        module = importlib.import_module(f"segwise.cli.{module_name}")
        verb_parser = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by tests, in-process)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"segwise {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"segwise {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
