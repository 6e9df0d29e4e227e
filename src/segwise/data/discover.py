"""Discovering a dataset: pairs, split, mask kind, classes, statistics (:func:`discover_dataset`).

Discovery and inspection share :func:`analyse`, so training starts with exactly the checks that
``segwise data inspect`` shows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segwise._validation import as_enum
from segwise.data.checks import check_files
from segwise.data.class_weights import counts_from_values
from segwise.data.classes import CAMVID_CLASSES, ClassTable, load_classes_file
from segwise.data.colorspace import ColorSpaceError
from segwise.data.formats import IMAGE_SUFFIXES, MaskKind, NonFinite, read_image, to_unit_float
from segwise.data.info import DataInfo, DatasetIndex, Problem, Sample, Severity, raise_or_warn
from segwise.data.masks import detect_kind, mask_kind_spec
from segwise.data.masks.base import ClassContext
from segwise.data.pairing import find_layout, split_samples
from segwise.data.scan import ImageScan, MaskScan, scan_image, scan_mask
from segwise.data.volume_discover import VolumeScan, analyse_volumes, find_volume_layout
from segwise.enums import Task
from segwise.labels import LabelSpace, check_ignore_label

__all__ = ["Analysis", "DiscoverOptions", "analyse", "discover_dataset"]

_STATS_IMAGES = 32  # training images decoded for mean/std


@dataclass(frozen=True)
class DiscoverOptions:
    """What the user says about a dataset (one value for discovery and inspection).

    Attributes:
        mask_kind: how masks encode labels; ``AUTO`` detects it (see :class:`MaskKind`).
        ignore_index: a label value to ignore in loss and metrics (overrides the class file).
        num_classes: number of classes, background included (default: class file, known
            layout, or inferred from the label values, with a notice).
        class_names: one name per class (default: class file, known layout, or "class_<i>").
        val_fraction: share of samples put into val when the data has no split of its own.
        seed: seed of that split and of the sample of images used for mean/std.
        nonfinite: NaN / inf pixels of float images: refused (an error per file, the default)
            or ignored (:class:`~segwise.data.formats.NonFinite`).
        normalization: volumes only: ``"auto"`` (CT when ``dataset.json`` says so, else
            per-volume z-score), ``"zscore"`` or ``"ct"`` (:class:`~segwise.enums.Normalization`).
    """

    mask_kind: MaskKind = MaskKind.AUTO
    ignore_index: int | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    val_fraction: float = 0.2
    seed: int = 0
    nonfinite: NonFinite = NonFinite.REFUSE
    normalization: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask_kind", as_enum(self.mask_kind, MaskKind, "mask_kind"))
        object.__setattr__(self, "nonfinite", as_enum(self.nonfinite, NonFinite, "nonfinite"))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(self.class_names))


@dataclass
class Analysis:
    """Everything discovery learnt; :class:`DatasetIndex` is the part the engine needs."""

    index: DatasetIndex
    image_scans: dict[str, ImageScan] = field(default_factory=dict)  # by sample id
    mask_scans: dict[str, MaskScan] = field(default_factory=dict)  # by sample id
    instance_counts: dict[str, int] = field(default_factory=dict)  # objects per sample
    ignored_pixels: int = 0  # mask pixels labelled ignore_index (not in class_pixel_counts)
    crowd_counts: dict[str, int] = field(default_factory=dict)  # COCO crowd regions per sample
    volume_scans: dict[str, VolumeScan] = field(default_factory=dict)  # volumes, by sample id


def discover_dataset(
    root: str | Path,
    *,
    mask_kind: MaskKind | str = "auto",
    ignore_index: int | None = None,
    num_classes: int | None = None,
    class_names: list[str] | tuple[str, ...] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    strict: bool = True,
    nonfinite: NonFinite | str = NonFinite.REFUSE,
    normalization: str = "auto",
) -> DatasetIndex:
    """Find image/mask pairs under ``root``, split them, and describe the data.

    Args:
        root: a dataset folder in one of the layouts of :mod:`segwise.data.pairing`, or a
            ``.csv``/``.txt`` file of pairs.
        mask_kind: how masks encode labels; ``"auto"`` detects it (see :class:`MaskKind`).
        ignore_index: a label value to ignore in loss and metrics (overrides the class file).
        num_classes: number of classes, background included (default: class file, known
            layout, or inferred from the label values, with a notice).
        class_names: one name per class (default: class file, known layout, or "class_<i>").
        val_fraction: share of samples put into val when the data has no split of its own.
        seed: seed of that split and of the sample of images used for mean/std.
        strict: raise :class:`DataError` on fatal problems (unreadable files, size
            mismatches, unexpected label values, ...) and emit one ``UserWarning`` per kind of
            recoverable problem or notice (files left out, 0/255 mapped, ...), naming the files.
            ``False`` only records them in ``problems`` (what ``inspect_dataset`` uses).
        nonfinite: NaN / inf pixels in float images: ``"refuse"`` (an error naming each file
            and its count) or ``"ignore"`` (read as the channel mean, their mask pixels left
            out of loss and metrics); :class:`~segwise.data.formats.NonFinite`.
        normalization: volumes (``imagesTr/`` + ``labelsTr/`` or ``images/`` + ``labels/``
            of NIfTI files, :mod:`segwise.data.volume_discover`): ``"auto"``, ``"zscore"``
            or ``"ct"``.

    Returns:
        The :class:`DatasetIndex`; its ``problems`` list what was noticed or left out.

    Raises:
        FileNotFoundError: when ``root`` does not exist.
        DataError: (a ``ValueError``) with ``strict``, listing every fatal problem and its file.
        ValueError: when nothing usable is found, naming what is missing.
    """
    index = analyse(root, DiscoverOptions(
        mask_kind=mask_kind, ignore_index=ignore_index, num_classes=num_classes,
        class_names=class_names, val_fraction=val_fraction, seed=seed,
        nonfinite=nonfinite, normalization=normalization)).index
    if strict:
        raise_or_warn(index.problems, index.root)
    return index


def analyse(root: str | Path, options: DiscoverOptions) -> Analysis:
    """Discovery with the per-file scans kept (used by :func:`segwise.data.inspect_dataset`)."""
    root = Path(root)
    volumes = find_volume_layout(root)
    if volumes is not None:
        index, scans = analyse_volumes(
            root, volumes, normalization=options.normalization,
            ignore_index=options.ignore_index, num_classes=options.num_classes,
            class_names=options.class_names, val_fraction=options.val_fraction,
            seed=options.seed)
        k = index.info.labels.num_classes
        index.class_pixels = {sid: counts_from_values(scan.label_values, scan.label_counts,
                                                      num_classes=k)
                              for sid, scan in scans.items()}
        return Analysis(index, volume_scans=scans)
    kind = options.mask_kind
    val_fraction, seed = options.val_fraction, options.seed
    layout = find_layout(root)
    problems = list(layout.problems)
    train, val, split_source, split_problems, test = split_samples(
        layout.samples, root=root, fixed=layout.fixed_split, val_fraction=val_fraction, seed=seed)
    problems += split_problems
    samples = [*train, *val, *test]
    if not samples:
        reasons = [f"{p.file}: {p.message}" for p in problems
                   if p.severity != Severity.INFO][:8]
        more = "".join(f"\n  - {r}" for r in reasons)
        raise ValueError(f"no image/mask pairs found in {root} ({layout.name} layout)"
                         + (f"; what was found:{more}" if more else
                            "; the folders hold no image files (" + ", ".join(IMAGE_SUFFIXES)
                            + ")"))

    image_scans: dict[str, ImageScan] = {}
    for s in samples:
        try:
            image_scans[s.id] = scan_image(s.image_path)
        except ValueError as err:
            code = "color_space" if isinstance(err, ColorSpaceError) else "unreadable_image"
            problems.append(Problem(Severity.ERROR, code, str(s.image_path), str(err)))
    if kind == MaskKind.AUTO:  # from the layout and folders, before decoding any mask
        kind = detect_kind(layout.name, samples, None)
    mask_scans: dict[str, MaskScan] = {}
    if kind == MaskKind.AUTO or mask_kind_spec(kind).scans_files:
        for s in samples:
            try:
                mask_scans[s.id] = scan_mask(s.mask_path)
            except ValueError as err:
                problems.append(Problem(Severity.ERROR, "unreadable_mask", str(s.mask_path),
                                        str(err)))
    if kind == MaskKind.AUTO:
        kind = detect_kind(layout.name, samples, list(mask_scans.values()))

    table, ignore, task, notes = _resolve_classes(
        root, layout_name=layout.name, kind=kind, mask_scans=mask_scans,
        samples=samples, options=options)
    problems += notes
    found = check_files(samples, image_scans=image_scans, mask_scans=mask_scans, root=root,
                        kind=kind, table=table, ignore_index=ignore,
                        nonfinite=options.nonfinite)
    analysis = Analysis(DatasetIndex(root, train, val, info=None, layout=layout.name,  # type: ignore[arg-type]
                                     split_source=split_source, unpaired=layout.unpaired,
                                     test=test, class_pixels=found.sample_counts),
                        image_scans, mask_scans, instance_counts=found.instance_counts,
                        ignored_pixels=found.ignored_pixels, crowd_counts=found.crowd_counts)
    counts = found.counts
    problems += found.problems
    in_channels = _channels(image_scans, samples, problems)
    mean, std = _mean_std(train or val or test, image_scans, in_channels, seed)
    sizes = [image_scans[s.id].size for s in (train or val or test) if s.id in image_scans]
    median = tuple(int(v) for v in np.median(np.array(sizes), axis=0)) if sizes else (0, 0)
    try:  # the label space's one validity rule, checked before anything is trained
        check_ignore_label(ignore, len(table.names))
    except ValueError as err:
        given = ("--ignore-index / ignore_index=" if options.ignore_index is not None
                 else table.source)
        problems.append(Problem(Severity.ERROR, "ignore_in_class_range", str(root),
                                f"{err} (the ignore label came from {given})"))
        ignore = None  # the error stops the run; the report still describes the classes
    labels = LabelSpace(task=task, names=table.names, colors=table.colors, ignore_index=ignore,
                        ignore_color=table.ignore_color)
    analysis.index.info = DataInfo(
        labels=labels, in_channels=in_channels, mask_kind=kind, mean=mean, std=std,
        class_pixel_counts=tuple(int(c) for c in counts), median_size=median,
        classes_source=table.source)
    analysis.index.problems = problems
    return analysis


def _resolve_classes(
    root: Path, *, layout_name: str, kind: MaskKind, mask_scans: dict[str, MaskScan],
    samples: list[Sample], options: DiscoverOptions,
) -> tuple[ClassTable, int | None, Task, list[Problem]]:
    """The class table: ``classes.json``, else a known layout, else what the kind implies
    (``mask_scans``: the scan of each sample's mask, by sample id)."""
    scans = list(mask_scans.values())
    ignore_index, num_classes = options.ignore_index, options.num_classes
    classes_file = root / "classes.json" if root.is_dir() else root.parent / "classes.json"
    table: ClassTable | None = None
    if classes_file.is_file():
        table = load_classes_file(classes_file)
    elif layout_name == "camvid" and root.name.lower().startswith("camvid"):
        table = CAMVID_CLASSES
    ignore = ignore_index if ignore_index is not None else (table.ignore_index if table else None)
    values: Counter[int] = Counter()
    for s in scans:
        values.update(dict(zip(s.values.tolist(), s.counts.tolist(), strict=True)))
    found = mask_kind_spec(kind).classes(ClassContext(
        root=root, samples=samples, scans=scans, values=values, table=table,
        ignore_index=ignore, num_classes=num_classes,
        scans_by_file={s.mask_path: mask_scans[s.id] for s in samples if s.id in mask_scans}))
    table = found.table or table
    ignore = found.ignore_index
    notes = list(found.notes)
    assert table is not None
    if num_classes is not None and num_classes != len(table.names):
        raise ValueError(f"num_classes={num_classes} but {table.source} gives "
                         f"{len(table.names)} classes ({', '.join(table.names[:12])}); "
                         "make them agree or leave num_classes out")
    if options.class_names is not None:
        if len(options.class_names) != len(table.names):
            raise ValueError(f"class_names has {len(options.class_names)} names but the data "
                             f"has {len(table.names)} classes ({table.source})")
        table = ClassTable(tuple(options.class_names), table.colors, table.ignore_index,
                           table.ignore_color, table.source)
    if ignore_index is not None:
        ignore = ignore_index
    n = len(table.names)
    task = found.task or (Task.BINARY if n == 2 else Task.MULTICLASS)
    return table, ignore, task, notes


def _channels(scans: dict[str, ImageScan], samples: list[Sample], problems: list[Problem]) -> int:
    counts = Counter(s.channels for s in scans.values())
    if not counts:
        return 3
    c = counts.most_common(1)[0][0]
    if len(counts) > 1 and c == 1 and 3 in counts:
        c = 3  # mixed grey and RGB: read everything as RGB
    for s in samples:
        sc = scans.get(s.id)
        if sc is None or sc.channels == c:
            continue
        if sc.channels == 1 and c == 3:
            problems.append(Problem(Severity.INFO, "gray_to_rgb", str(s.image_path),
                                    "grayscale image among RGB ones; its channel is repeated 3x"))
        else:
            problems.append(Problem(Severity.ERROR, "channel_mismatch", str(s.image_path),
                                    f"{sc.channels} channels but most images have {c}; "
                                    "convert it or remove it"))
    return c


def _mean_std(samples: list[Sample], scans: dict[str, ImageScan], channels: int,
              seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    usable = [s for s in samples if s.id in scans]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(usable), size=min(_STATS_IMAGES, len(usable)), replace=False))
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    n = np.zeros(channels)  # finite values per channel: NaN / inf pixels never enter
    for i in pick:
        try:
            arr = to_unit_float(read_image(usable[i].image_path))
        except ValueError:
            continue  # reported as unreadable by the checks
        if arr.shape[-1] == 1 and channels == 3:
            arr = np.repeat(arr, 3, axis=-1)
        if arr.shape[-1] != channels:
            continue
        step = max(1, max(arr.shape[:2]) // 256)  # subsample large images: stats, not pixels
        flat = arr[::step, ::step].reshape(-1, channels).astype(np.float64)
        finite = np.isfinite(flat)
        flat = np.where(finite, flat, 0.0)
        total += flat.sum(0)
        total_sq += (flat**2).sum(0)
        n += finite.sum(0)
    if not n.all():
        return (0.5,) * channels, (0.25,) * channels
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # constant channel: leave its scale alone
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
