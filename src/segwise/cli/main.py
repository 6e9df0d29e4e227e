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

This is the one place where exceptions become messages (:func:`error_message`): segwise's own
errors already name the file or value and the fix; known library failures (PyTorch's batch-norm
and out-of-memory errors, onnxruntime failures, OS errors) are translated into one such line;
anything else is named as unexpected, exit code 1. ``segwise --debug VERB ...`` re-raises
instead, showing the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from segwise import __version__

__all__ = ["VERBS", "UserError", "build_parser", "error_message", "main"]

# Explicit, ordered list: no registration by import side effects.
VERBS: tuple[str, ...] = ("train", "evaluate", "predict", "export", "demo", "models", "data")


_DEBUG_HELP = "show the full traceback of an error instead of the one-line message"


class UserError(Exception):
    """An error caused by the user's input; printed as one clear message, exit code 2."""


# (text in a library's message or in its exception's module, what it means and what to do);
# first match wins. onnxruntime is named by its module: a message of ours that names
# onnxruntime (a ValueError saying how to run a file) is no onnxruntime failure.
_KNOWN_LIBRARY_ERRORS: tuple[tuple[str, str], ...] = (
    ("Expected more than 1 value per channel when training",
     "batch norm saw a single value per channel (batch size 1 and a 1x1 feature map at the "
     "encoder's deepest stage); use --batch-size 2 or more, or a larger --crop-size"),
    ("out of memory",
     "the device ran out of memory; lower --batch-size or --crop-size (or use --amp bf16)"),
    ("onnxruntime.capi",
     "onnxruntime could not run the exported graph; export it again with this segwise version"),
)


def error_message(err: BaseException) -> tuple[str, int]:
    """The one line (or, for data reports, the lines) printed for ``err``, and the exit code.

    Returns:
        ``(message, 2)`` for errors in the user's input (segwise's own ``ValueError``,
        ``FileNotFoundError``, ``FileExistsError``, :class:`UserError`, OS errors naming a
        file), ``(message, 1)`` for library failures, translated when known.
    """
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    origin = f"{type(err).__module__}.{type(err).__qualname__}"
    ours = origin.startswith("segwise.")  # segwise's own errors already say what to do
    for needle, meaning in _KNOWN_LIBRARY_ERRORS:  # PyTorch raises some as ValueError
        if not ours and (needle in text or needle in origin):
            return f"{meaning} ({type(err).__name__}: {first[:200]})", 1
    if isinstance(err, UserError | ValueError | FileNotFoundError | FileExistsError):
        return str(err), 2
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}; check the path and its permissions", 2
    return (f"unexpected {type(err).__name__}: {first[:300]}. Run `segwise --debug ...` for the "
            "traceback and report it"), 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segwise",
        description="Image segmentation: train, evaluate, predict and export models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"segwise {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
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
        # also accepted after the verb; SUPPRESS keeps a --debug given before it
        verb_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help=_DEBUG_HELP)
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
    except KeyboardInterrupt:
        print(f"segwise {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        message, code = error_message(err)
        print(f"segwise {args.verb}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
