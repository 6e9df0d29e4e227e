"""all_reduce across two real processes (gloo over loopback, file rendezvous; no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributed as dist
    from segwise.metrics import BoundaryMetrics, ConfusionMatrix, PerImageDice

    rank, init, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    # rank 0 sees target 0 0 1 1 / pred 0 1 1 1; rank 1 sees target 2 2 / pred 2 0
    if rank == 0:
        pred, target = torch.tensor([[[0, 1, 1, 1]]]), torch.tensor([[[0, 0, 1, 1]]])
    else:
        pred, target = torch.tensor([[[2, 0]]]), torch.tensor([[[2, 2]]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    cm.all_reduce()
    per_image = PerImageDice(3)
    per_image.update(pred, target, ids=[f"img{rank}"])
    per_image.all_reduce()
    r = per_image.compute()
    boundary = BoundaryMetrics(3)
    boundary.update(pred, target)
    boundary.all_reduce()
    hd = [[str(v) for v in row] for row in boundary.compute().hd.tolist()]
    with open(out, "w") as f:
        json.dump({"matrix": cm.matrix.tolist(), "ids": list(r.ids),
                   "per_image": r.per_image.tolist(), "hd": hd}, f)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_all_reduce_sums_confusion_and_gathers_per_image(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), init, str(tmp_path / f"out{rank}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in (0, 1)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=180)
        assert p.returncode == 0, output.decode()
    expected_matrix = [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"out{rank}.json").read_text())
        assert got["matrix"] == expected_matrix
        assert got["ids"] == ["img0", "img1"]
        # img0: class 0 TP1 FN1 -> 2/3, class 1 TP2 FP1 -> 4/5, class 2 absent -> left out
        # img1: class 0 FP1 -> 0, class 2 TP1 FN1 -> 2/3, class 1 absent -> left out
        assert got["per_image"][0] == pytest.approx((2 / 3 + 4 / 5) / 2)
        assert got["per_image"][1] == pytest.approx((0 + 2 / 3) / 2)
        # boundary metrics gathered in rank order; one-row images: every pixel is boundary.
        # img0 class 0: target cols {0, 1}, pred {0} -> HD 1; class 1: {2, 3} vs {1, 2, 3} -> 1
        # img1 class 0: predicted, absent from the target -> inf; class 2: {0, 1} vs {0} -> 1
        assert got["hd"] == [["1.0", "1.0", "nan"], ["inf", "nan", "1.0"]]


def test_all_reduce_wiring_with_a_simulated_two_rank_group(monkeypatch):
    """Fast check of the wiring: a fake process group where the other rank holds a copy of
    this rank's state (so a sum doubles the counts and a gather repeats the images)."""
    import torch
    import torch.distributed as dist

    from segwise.metrics import ConfusionMatrix, PerImageDice

    def fake_all_reduce(tensor, op=None):
        tensor += tensor.clone()

    def fake_all_gather_object(out, obj):
        ids, counts = obj
        out[0] = (ids, counts)
        out[1] = ([f"{i}-other" for i in ids], counts.clone())

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "gloo")
    monkeypatch.setattr(dist, "get_world_size", lambda *a: 2)
    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    monkeypatch.setattr(dist, "all_gather_object", fake_all_gather_object)

    pred, target = torch.tensor([[[0, 1, 1, 1]]]), torch.tensor([[[0, 0, 1, 1]]])
    cm = ConfusionMatrix(2)
    cm.update(pred, target)
    cm.all_reduce()
    assert cm.matrix.tolist() == [[2, 2], [0, 4]]
    per_image = PerImageDice(2)
    per_image.update(pred, target, ids=["a"])
    per_image.all_reduce()
    r = per_image.compute()
    assert r.ids == ("a", "a-other")
    assert r.per_image.tolist() == pytest.approx([(2 / 3 + 4 / 5) / 2] * 2)
