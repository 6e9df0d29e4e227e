"""2D speed of the paths the volumes work made N-dimensional (issue 26), for before/after runs.

Times, on one CPU thread, the best of several calls of: Dice + CE forward and backward on
(8, 11, 192, 192) logits (the loss's input preparation), the per-image confusion matrices of
(8, 512, 512) label maps (the metrics' label-map checks), and the tiled forward of a
768x768 image with 256 px tiles (``forward_logits``). Run it against two checkouts, alternating,
in separate processes:

    for i in 1 2 3; do
      PYTHONPATH=/tmp/old/src python benchmarks/bench_nd_paths.py --tag before
      PYTHONPATH=src python benchmarks/bench_nd_paths.py --tag after
    done

Prints one JSON line per run (and appends it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="", help="a label for this checkout")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", help="append the JSON line to this file")
    args = parser.parse_args()

    from segwise.inferers.forward import forward_logits
    from segwise.labels import LabelSpace
    from segwise.losses import create_loss
    from segwise.metrics.functional import batch_confusion_matrix

    torch.set_num_threads(1)
    torch.manual_seed(0)
    labels = LabelSpace(task="multiclass", names=tuple("abcdefghijk"), ignore_index=255)
    loss = create_loss("dicece", labels=labels)
    logits = torch.randn(8, 11, 192, 192, requires_grad=True)
    target = torch.randint(0, 11, (8, 192, 192))
    pred, truth = torch.randint(0, 11, (8, 512, 512)), torch.randint(0, 11, (8, 512, 512))
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    image = torch.randn(1, 3, 768, 768)

    def best(call) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return 1e3 * min(times)

    row = {
        "tag": args.tag,
        "torch": torch.__version__,
        "dicece_fwd_bwd_ms": best(lambda: loss(logits, target).backward()),
        "batch_confusion_ms": best(lambda: batch_confusion_matrix(pred, truth, num_classes=11)),
        "forward_logits_tiled_ms": best(lambda: forward_logits(conv, image, tile_size=256)),
    }
    line = json.dumps(row)
    print(line)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
