"""Augmentation keeps image and mask aligned; padding values; loaders; synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from segwise.data import (
    DataInfo,
    SegmentationDataset,
    discover_dataset,
    eval_transforms,
    make_loader,
    pad_collate,
    train_transforms,
)
from segwise.data.synthetic import write_synthetic_dataset
from segwise.labels import LabelSpace


def _info(ignore_index=None, channels=3) -> DataInfo:
    labels = LabelSpace(task="multiclass", names=("a", "b", "c"), colors=((0, 0, 0),) * 3,
                        ignore_index=ignore_index)
    return DataInfo(labels=labels, in_channels=channels, mask_kind="index",
                    mean=(0.5,) * channels, std=(0.25,) * channels)


def _marker_item(h=40, w=50):
    """An image whose channel 0 is 1 exactly where the mask is 1 (a rectangle marker)."""
    mask = torch.zeros(h, w, dtype=torch.int64)
    mask[5:15, 8:30] = 1
    mask[25:35, 30:45] = 2
    image = torch.zeros(3, h, w)
    image[0] = (mask == 1).float()
    image[1] = (mask == 2).float()
    return {"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask), "id": "m"}


@pytest.mark.parametrize("seed", range(6))
def test_train_transforms_keep_image_and_mask_aligned(seed):
    torch.manual_seed(seed)
    t = train_transforms(_info(), crop_size=(32, 32), scale=(0.7, 1.5), hflip=True, vflip=True,
                         rotation=30, color_jitter=0.0, elastic=bool(seed % 2))
    out = t(_marker_item())
    img, mask = out["image"], out["mask"]
    assert img.shape == (3, 32, 32) and mask.shape == (32, 32) and out["id"] == "m"
    assert mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}  # nearest: no blended labels; 3 = pad
    # where the mask says 1 (2), the image's marker channel is bright, and vice versa
    inside1, inside2 = mask == 1, mask == 2
    if inside1.any():
        assert img[0][inside1].mean() > 0.7
    if inside2.any():
        assert img[1][inside2].mean() > 0.7
    background = mask == 0
    if background.any():
        assert img[0][background].mean() < 0.3 and img[1][background].mean() < 0.3


def test_padding_uses_ignore_index_and_image_mean():
    info = _info(ignore_index=7)
    t = train_transforms(info, crop_size=(60, 70), scale=(1, 1), hflip=False)
    item = _marker_item(40, 50)
    out = t(item)
    mask, img = out["mask"], out["image"]
    assert (mask == 7).sum() == 60 * 70 - 40 * 50
    padded = mask == 7
    assert torch.allclose(img[:, padded], torch.tensor(0.5))  # mean -> 0 after normalising


def test_padding_without_ignore_index_uses_the_first_value_after_the_classes():
    info = _info(ignore_index=None)
    # never a real class, even above 255 classes
    assert info.labels.pad_value == info.labels.num_classes
    out = eval_transforms(info, crop_size=(48, 56))(_marker_item(40, 50))
    pad = info.labels.num_classes
    assert out["mask"].shape == (48, 56) and (out["mask"] == pad).sum() == 48 * 56 - 40 * 50


@pytest.mark.parametrize("rotation", [0, 40])
def test_instance_masks_are_padded_with_zero_and_move_with_the_mask(rotation):
    from segwise.data.transforms import InstanceMasks

    torch.manual_seed(1)
    item = _marker_item(40, 50)
    stack = torch.stack([item["mask"] == 1, item["mask"] == 2]).to(torch.uint8)
    item["instances"] = {"masks": InstanceMasks(stack)}
    t = train_transforms(_info(ignore_index=7), crop_size=(60, 70), scale=(1, 1), hflip=True,
                         rotation=rotation)
    out = t(item)
    masks, mask = out["instances"]["masks"], out["mask"]
    assert isinstance(masks, InstanceMasks) and masks.shape == (2, 60, 70)
    assert set(masks.unique().tolist()) <= {0, 1}  # padding is "no instance", never 7 or 255
    assert (mask == 7).any()  # while the semantic mask is padded with the ignore label
    assert torch.equal(masks[0] == 1, mask == 1) and torch.equal(masks[1] == 1, mask == 2)


def test_color_jitter_on_multichannel_images():
    info = _info(channels=5)
    item = {"image": tv_tensors.Image(torch.rand(5, 20, 20)),
            "mask": tv_tensors.Mask(torch.zeros(20, 20, dtype=torch.int64)), "id": "x"}
    out = train_transforms(info, crop_size=16, color_jitter=0.5)(item)
    assert out["image"].shape == (5, 16, 16)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="color_jitter"):
        train_transforms(_info(), crop_size=8, color_jitter=2.0)
    with pytest.raises(ValueError, match="crop_size"):
        train_transforms(_info(), crop_size=(0, 8))


def test_dataset_normalises_after_transform(tmp_path):
    root = write_synthetic_dataset(tmp_path / "s", num_images=4, size=(32, 32))
    index = discover_dataset(root)
    ds = SegmentationDataset(index.train, index.info, cache=True)
    a, b = ds[0], ds[0]
    assert torch.equal(a["image"], b["image"])  # cache hands out copies
    img = a["image"]
    assert img.dtype == torch.float32 and img.shape == (3, 32, 32)
    assert abs(img.mean().item()) < 1.0


def test_loader_is_deterministic_and_pads_batches(tmp_path):
    root = write_synthetic_dataset(tmp_path / "s", num_images=8, size=(32, 32))
    index = discover_dataset(root)
    ds = SegmentationDataset(index.train, index.info,
                             transform=train_transforms(index.info, crop_size=24))

    def batches(workers):
        torch.manual_seed(0)  # with workers=0 augmentation draws from the global RNG
        loader = make_loader(ds, batch_size=3, shuffle=True, workers=workers, seed=3)
        return [(b["id"], b["image"].clone(), b["mask"].clone()) for b in loader]

    first, second = batches(0), batches(0)
    assert [ids for ids, _, _ in first] == [ids for ids, _, _ in second]
    assert all(torch.equal(x[1], y[1]) for x, y in zip(first, second, strict=True))
    assert first[0][1].shape == (3, 3, 24, 24) and first[0][2].dtype == torch.int64


def test_loader_with_workers_matches_itself(tmp_path):
    root = write_synthetic_dataset(tmp_path / "s", num_images=6, size=(24, 24))
    index = discover_dataset(root)
    ds = SegmentationDataset(index.train, index.info,
                             transform=train_transforms(index.info, crop_size=16))
    runs = []
    for _ in range(2):
        loader = make_loader(ds, batch_size=2, shuffle=True, workers=2, seed=5)
        assert loader.persistent_workers and loader.prefetch_factor == 4
        runs.append([b["image"] for b in loader])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_pad_collate_of_different_sizes():
    items = [{"image": torch.ones(3, 4, 5), "mask": torch.ones(4, 5, dtype=torch.int64),
              "id": "a"},
             {"image": torch.ones(3, 6, 3), "mask": torch.ones(6, 3, dtype=torch.int64),
              "id": "b"}]
    batch = pad_collate(items, mask_pad_value=9)
    assert batch["image"].shape == (2, 3, 6, 5) and batch["id"] == ["a", "b"]
    assert batch["mask"][0, 5, 0] == 9 and batch["image"][0, 0, 5, 0] == 0
    assert batch["mask"][1, 0, 4] == 9


def test_synthetic_is_deterministic_and_readable(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", flavour="instance", num_images=3, seed=4)
    b = write_synthetic_dataset(tmp_path / "b", flavour="instance", num_images=3, seed=4)
    for rel in ("images/synth_0001.png", "instances/synth_0001.png", "instances/synth_0001.json",
                "classes.json", "splits.json"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    index = discover_dataset(a)
    assert index.info.labels.names == ("background", "disc", "square", "triangle")
    ds = SegmentationDataset(index.samples, index.info, instances=True)
    item = ds[0]
    k = len(item["instances"]["ids"])
    assert k >= 3 and item["instances"]["ids"].tolist() == list(range(1, k + 1))


@pytest.mark.parametrize("flavour", ["multiclass", "binary"])
def test_synthetic_flavours_go_through_the_user_path(tmp_path, flavour):
    root = write_synthetic_dataset(tmp_path / flavour, flavour=flavour, num_images=12)
    index = discover_dataset(root)
    assert index.info.labels.task.value == flavour and index.split_source == "splits.json"
    assert len(index.val) == 3 and len(index.train) == 9
    counts = np.array(index.info.class_pixel_counts)
    assert counts[0] > counts[1:].sum()  # background dominates
    if flavour == "multiclass":
        assert counts[1] > counts[2] > counts[3] > 0  # discs > squares > triangles


def test_prediction_normalisation_matches_the_dataset(tmp_path):
    from segwise.data import normalize_image, read_image

    root = write_synthetic_dataset(tmp_path / "s", num_images=4, size=(32, 32))
    index = discover_dataset(root)
    ds = SegmentationDataset(index.val, index.info, transform=eval_transforms(index.info))
    expected = normalize_image(read_image(index.val[0].image_path), index.info)
    assert torch.equal(ds[0]["image"], expected)


def test_getitem_in_main_process_restores_torch_threads(tmp_path):
    root = write_synthetic_dataset(tmp_path / "s", num_images=4, size=(32, 32))
    index = discover_dataset(root)
    ds = SegmentationDataset(index.train, index.info)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ds[0]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_one_warp_at_scale_one_is_an_exact_window():
    """Scale 1, no rotation or flips: the crop is a whole-pixel window, copied exactly."""
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    mask = torch.randint(0, 3, (40, 50))
    t = train_transforms(_info(), crop_size=(24, 30), scale=(1, 1), hflip=False)
    for _ in range(3):
        out = t({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask), "id": "x"})
        assert out["image"].dtype == torch.uint8  # 8-bit until the dataset normalises
        hits = [(y, x) for y in range(17) for x in range(21)
                if torch.equal(image[:, y:y + 24, x:x + 30], out["image"])]
        assert len(hits) == 1
        y, x = hits[0]
        assert torch.equal(mask[y:y + 24, x:x + 30], out["mask"])


def test_boxes_move_with_the_instance_masks():
    from torchvision.ops import masks_to_boxes

    from segwise.data.transforms import InstanceMasks

    torch.manual_seed(2)
    item = _marker_item(40, 50)
    stack = torch.stack([item["mask"] == 1, item["mask"] == 2]).to(torch.uint8)
    boxes = masks_to_boxes(stack)
    boxes[:, 2:] += 1
    item["instances"] = {"masks": InstanceMasks(stack),
                         "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY",
                                                           canvas_size=(40, 50))}
    t = train_transforms(_info(), crop_size=(48, 64), scale=(1.2, 1.2), hflip=True)
    out = t(item)["instances"]
    expected = masks_to_boxes(out["masks"])
    expected[:, 2:] += 1
    assert out["boxes"].canvas_size == (48, 64)
    assert torch.allclose(out["boxes"].as_subclass(torch.Tensor), expected, atol=1.0)


def test_colour_matrices_match_torchvision_step_by_step():
    """Brightness/contrast/saturation in a random order as one matrix = torchvision's
    adjust_* one after another (no value leaves [0, 1] here, so clipping never acts)."""
    from torchvision.transforms.v2 import functional as F

    from segwise.data.photometric import color_matrices, color_matrix

    torch.manual_seed(0)
    x = torch.rand(3, 20, 30) * 0.5 + 0.25
    for _ in range(6):
        order = torch.randperm(3)
        f = 1 + (torch.rand(3, dtype=torch.float64) * 2 - 1) * 0.2
        matrix = color_matrices(order[None], f[None], x.double().mean((1, 2))[None])[0]
        assert np.allclose(matrix.numpy(), color_matrix(order.tolist(), f.numpy(),
                                                        x.double().mean((1, 2)).numpy()))
        got = torch.einsum("ij,jhw->ihw", matrix[:, :3], x.double()) + matrix[:, 3, None, None]
        ref = x
        for k in order.tolist():
            adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)[k]
            ref = adjust(ref, float(f[k]))
        assert (got.float() - ref).abs().max() < 2e-3  # torchvision's grey mean is rounded


def test_colour_jitter_8_bit_and_float_paths_agree():
    from segwise.data.photometric import ColorJitter

    torch.manual_seed(1)
    image = torch.randint(40, 200, (3, 16, 20), dtype=torch.uint8)
    jitter = ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.0)
    for _ in range(4):
        params = jitter.make_params([])
        a = jitter.transform(tv_tensors.Image(image), params).float() / 255
        b = jitter.transform(tv_tensors.Image(image.float() / 255), params)
        assert (a - b).abs().max() <= 1.5 / 255


def test_dataset_hands_8_bit_images_to_the_transform(tmp_path):
    root = write_synthetic_dataset(tmp_path / "s", num_images=4, size=(32, 32))
    index = discover_dataset(root)
    seen = []

    def spy(item):
        seen.append(item["image"].dtype)
        return item

    ds = SegmentationDataset(index.train, index.info, transform=spy)
    assert ds[0]["image"].dtype == torch.float32 and seen == [torch.uint8]
    raw = SegmentationDataset(index.train, index.info, normalize=False)[0]["image"]
    assert raw.dtype == torch.uint8


@pytest.mark.parametrize(
    ("device", "cpus", "expected"),
    [("cuda", 16, (15, True, True, 4)), ("cuda", 2, (1, True, True, 4)),
     ("cpu", 2, (0, False, False, None)), ("cpu", 8, (4, False, True, 4)),
     ("cpu", 64, (8, False, True, 4))],
)
def test_loader_defaults_follow_cpus_and_device(device, cpus, expected):
    from segwise.data.loaders import loader_settings

    s = loader_settings(device, cpus=cpus)
    assert (s.workers, s.pin_memory, s.persistent_workers, s.prefetch_factor) == expected
    assert f"workers={expected[0]}" in s.describe() and f"{cpus} CPUs, {device}" in s.describe()


def test_loader_settings_overrides_and_errors():
    from segwise.data.loaders import loader_settings

    s = loader_settings("cuda", cpus=16, workers=2, pin_memory=False, prefetch_factor=8)
    assert (s.workers, s.pin_memory, s.persistent_workers, s.prefetch_factor) == (2, False,
                                                                                   True, 8)
    assert loader_settings("cpu", cpus=16, workers=0).prefetch_factor is None
    with pytest.raises(ValueError, match="prefetch_factor"):
        loader_settings("cpu", cpus=16, workers=0, prefetch_factor=2)
    with pytest.raises(ValueError, match="workers"):
        loader_settings("cpu", workers=-1)


def test_collate_of_8_bit_items_keeps_values_and_threads():
    hwc = [torch.randint(0, 256, (6, 5, 3), dtype=torch.uint8) for _ in range(3)]
    items = [{"image": x.permute(2, 0, 1), "mask": torch.zeros(6, 5, dtype=torch.int64),
              "id": str(i)} for i, x in enumerate(hwc)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batch = pad_collate(items)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert torch.equal(batch["image"], torch.stack([x.permute(2, 0, 1) for x in hwc]))
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)


def test_padding_of_many_channels_uses_each_channels_mean():
    """OpenCV repeats a 4-value border beyond 4 channels; each channel must get its own."""
    c = 6
    info = DataInfo(labels=LabelSpace(task="multiclass", names=("a", "b", "c")), in_channels=c,
                    mask_kind="index", mean=tuple(0.1 * (k + 1) for k in range(c)),
                    std=(0.25,) * c)
    item = {"image": tv_tensors.Image(torch.zeros(c, 10, 12)),
            "mask": tv_tensors.Mask(torch.zeros(10, 12, dtype=torch.int64)), "id": "x"}
    out = train_transforms(info, crop_size=(14, 16), scale=(1, 1), hflip=False)(item)
    padded = out["mask"] == info.labels.pad_value  # 3: the first value after the classes
    assert padded.sum() == 14 * 16 - 10 * 12
    for k in range(c):
        assert torch.allclose(out["image"][k][padded], torch.tensor(0.1 * (k + 1)))


def test_crowded_images_with_hundreds_of_instances():
    """OpenCV's Python binding refuses arrays of more than 128 channels: instance masks of
    crowded images (dsb2018 has images with hundreds of nuclei) are warped in groups."""
    from segwise.data.transforms import InstanceMasks

    torch.manual_seed(0)
    k = 200
    labels = torch.randint(0, k, (40, 50))  # every pixel belongs to one of 200 instances
    stack = (labels[None] == torch.arange(k)[:, None, None]).to(torch.uint8)
    item = {"image": tv_tensors.Image(torch.zeros(3, 40, 50, dtype=torch.uint8)),
            "mask": tv_tensors.Mask(labels), "id": "x",
            "instances": {"masks": InstanceMasks(stack)}}
    labels = LabelSpace(task="multiclass", names=tuple(map(str, range(k))),
                        colors=((0, 0, 0),) * k)
    info = DataInfo(labels=labels, in_channels=3, mask_kind="index", mean=(0.5,) * 3,
                    std=(0.25,) * 3)
    out = train_transforms(info, crop_size=(32, 32), scale=(0.8, 1.2), rotation=20)(item)
    masks, mask = out["instances"]["masks"], out["mask"]
    assert masks.shape == (k, 32, 32)
    inside = mask != info.labels.pad_value
    assert torch.equal(masks.argmax(0)[inside], mask[inside])  # the same nearest pixels
    assert (masks.sum(0)[~inside] == 0).all()


def test_instance_planes_outside_the_crop_come_out_empty():
    """Only planes inside the sampled region are gathered; the result equals a plain gather."""
    from segwise.data.transforms import InstanceMasks, _gather_labels

    stack = torch.zeros(3, 40, 50, dtype=torch.uint8)
    stack[0, 2:6, 2:6] = 1  # top left: outside the window below
    stack[1, 20:30, 30:45] = 1  # inside
    stack[2, 35:40, 0:5] = 1  # bottom left: outside
    rows = torch.arange(15, 35)[:, None].expand(20, 24)
    cols = torch.arange(25, 49)[None, :].expand(20, 24)
    index = rows * 50 + cols
    index[0, 0] = -1  # one output pixel outside the source
    out = _gather_labels(InstanceMasks(stack), index, 0)
    naive = stack.flatten(1)[:, index.clamp(min=0)] * (index >= 0)
    assert torch.equal(out.as_subclass(torch.Tensor), naive)
    assert out[0].sum() == 0 and out[2].sum() == 0 and out[1].sum() > 0
