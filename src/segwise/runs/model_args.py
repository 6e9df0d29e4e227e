"""``model_args``: the builder arguments checkpoints record, completed with every option.

A checkpoint records the arguments its model was built with (``model_args``, see
:mod:`segwise.runs.checkpoint`). Since checkpoint format 2 they are complete: the encoder
resolved and every option of the architecture with the value it was built with, defaults
included, so that a later change of a default never changes what a saved model loads into.
Format-1 files recorded only the options given; they are completed with the defaults of their
time (:data:`segwise.models.defaults.FORMAT1_DEFAULTS`). This module imports nothing from the
engine, so the adapters and the checkpoint reader can both use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COMPLETE_MODEL_ARGS_SINCE", "complete_model_args"]

#: the first checkpoint format whose ``model_args`` record every option (older: those given)
COMPLETE_MODEL_ARGS_SINCE = 2


def complete_model_args(
    args: dict[str, Any], *, as_of_format: int = COMPLETE_MODEL_ARGS_SINCE
) -> dict[str, Any]:
    """``model_args`` with every architecture option filled in, as checkpoints record them.

    Semantic models (kind ``semantic``): ``encoder`` resolved and every option of the
    architecture recorded. Instance models: their methods resolve their own options; where those
    name a semantic architecture (``arch``, ``arch_options``), ``arch_options`` is completed
    the same way. Other kinds are returned unchanged.

    Args:
        args: ``model_args`` as an adapter or a checkpoint holds them.
        as_of_format: the checkpoint format whose defaults fill the gaps: from
            :data:`COMPLETE_MODEL_ARGS_SINCE` on, this segwise's (for a new checkpoint); an
            older version, the defaults recorded for it (for an old file)."""
    from segwise.models.defaults import complete_build_args, format1_build_args

    complete = complete_build_args if as_of_format >= COMPLETE_MODEL_ARGS_SINCE else (
        format1_build_args
    )
    out = dict(args)
    kind = out.get("kind", "semantic")
    try:
        if kind == "semantic":
            out["encoder"], out["options"] = complete(
                out["name"], encoder=out.get("encoder"), options=out.get("options")
            )
        elif isinstance(out.get("options"), dict) and isinstance(out["options"].get("arch"), str):
            options = dict(out["options"])
            _, options["arch_options"] = complete(
                options["arch"], encoder=None, options=options.get("arch_options")
            )
            out["options"] = options
    except ValueError:  # an unknown architecture: left as is, for the builder to report
        return dict(args)
    return out
