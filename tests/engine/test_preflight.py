"""check_run: every name and option is checked before a run writes anything."""

from __future__ import annotations

import dataclasses

import pytest

from segwise.engine.config import Monitor
from segwise.engine.preflight import check_run


def _with(config, section, **values):
    return dataclasses.replace(
        config, **{section: dataclasses.replace(getattr(config, section), **values)})


def test_a_good_config_returns_the_index_and_decode_figures(fast_config, tiny_multiclass):
    checked = check_run(fast_config(tiny_multiclass))
    assert len(checked.index.train) + len(checked.index.val) + len(checked.index.test) == 12
    assert checked.decoded == 12


@pytest.mark.parametrize(("section", "values", "message"), [
    ("model", {"name": "unett"}, "unett"),
    ("model", {"encoder": "resnet344"}, "resnet344"),
    ("model", {"options": {"bogus": 1}}, "bogus"),
    ("model", {"weights": "/no/such/file.pth"}, "/no/such/file.pth"),
    ("train", {"monitor": Monitor.DSB_SCORE}, "dsb_score is not reported by a semantic run"),
    ("data", {"ignore_index": 1}, "ignore_index=1 lies inside"),
])
def test_each_bad_option_is_refused_by_name(fast_config, tiny_multiclass, section, values,
                                            message):
    config = _with(fast_config(tiny_multiclass), section, **values)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check_run(config)
