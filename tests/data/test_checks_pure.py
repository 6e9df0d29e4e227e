"""The file check pass is pure: it returns its findings and changes none of its inputs."""

from __future__ import annotations

import copy

import numpy as np
from PIL import Image

from segwise.data.checks import FileFindings, check_files
from segwise.data.classes import ClassTable
from segwise.data.formats import MaskKind
from segwise.data.info import Sample
from segwise.data.scan import scan_image, scan_mask


def test_check_files_returns_findings_without_touching_its_arguments(tmp_path):
    samples = []
    for i, values in enumerate([(0, 1), (1, 9)]):  # 9: out of range; 7 = ignore
        mask = np.full((4, 5), values[0], np.uint8)
        mask[0, :] = values[1]
        mask[3, 0] = 7
        Image.fromarray(mask).save(tmp_path / f"m{i}.png")
        Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / f"i{i}.png")
        samples.append(Sample(f"s{i}", tmp_path / f"i{i}.png", tmp_path / f"m{i}.png"))
    images = {s.id: scan_image(s.image_path) for s in samples}
    masks = {s.id: scan_mask(s.mask_path) for s in samples}
    before = copy.deepcopy((samples, images, masks))
    table = ClassTable(("a", "b"), ((0, 0, 0), (9, 9, 9)), 7, None, "test")
    found = check_files(samples, image_scans=images, mask_scans=masks, root=tmp_path,
                        kind=MaskKind.INDEX, table=table, ignore_index=7)
    assert isinstance(found, FileFindings)
    # image 0: 14 zeros, 5 ones; image 1: 14 ones (9s are not counted); one 7 per mask
    assert found.counts.tolist() == [14, 5 + 14] and found.ignored_pixels == 2
    assert [p.code for p in found.problems if p.file.endswith("m1.png")] == ["unexpected_labels"]
    after = (samples, images, masks)
    assert repr(after) == repr(before)
