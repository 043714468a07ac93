"""Sample data for a model: calibration sets and labelled evaluation sets.

A data source is named by a string (the ``--calibration`` / ``--data`` flags):

- ``random``: seeded N(0, 1) floats (integers in {0, 1}); only for latency work, accuracy is meaningless.
- an ``.npz`` file: one array per model input, named after the input (a single-input model also takes
  one unnamed array), each shaped ``[N, *input_shape[1:]]``: N samples along the batch axis. An
  integer array ``labels`` (``[N]``, class indices) makes the set labelled.
- an ``.npy`` file: one such array, for a single-input model.
- a directory of images (.jpg .jpeg .png .bmp .ppm .tif .tiff .webp, sorted by name), for a
  single-input image model; see :mod:`edgecc.data.images` for the preprocessing.

Samples are grouped into batches of the model's batch size (its first input dimension); a short
last batch is padded by repeating its last sample, and outputs for the padding are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..graph.io import TensorSpec
from .images import ImagePreprocessing, IMAGE_SUFFIXES, load_images

__all__ = ["DataSpec", "Dataset", "ImagePreprocessing", "load_dataset", "RANDOM", "LABEL_KEYS"]

RANDOM = "random"
LABEL_KEYS = ("labels",)
RANDOM_WARNING = (
    "calibrating on random data: latency figures are real, but accuracy figures of the INT8 model are meaningless; "
    "give real samples (a directory of images or an .npz) to measure accuracy"
)


@dataclass(frozen=True)
class DataSpec:
    """Where samples come from (a path or ``random``), how images are preprocessed, and how many to use.

    Only the path travels to worker processes; the samples are read where they are used.
    """

    source: str
    preprocessing: ImagePreprocessing = field(default_factory=ImagePreprocessing)
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise BadInputError(f"number of samples must be at least 1, got {self.limit}")

    @property
    def is_random(self) -> bool:
        return self.source == RANDOM

    def describe(self) -> str:
        if self.is_random:
            return f"random ({self.limit or 1} seeded samples; accuracy meaningless)"
        return self.source + (f" (up to {self.limit} samples)" if self.limit else "")


@dataclass
class Dataset:
    """Samples batched for a model: ``batches[i]`` feeds the model as is; ``valid[i]`` of its rows are
    real samples (the rest pad the last batch). ``labels`` has one class index per sample, or is None."""

    batches: list[dict[str, np.ndarray]]
    valid: list[int]
    labels: np.ndarray | None
    source: str

    @property
    def samples(self) -> int:
        return sum(self.valid)


def _batch_size(specs: list[TensorSpec], source: str) -> int:
    if not specs:
        raise BadInputError(f"{source}: the model has no inputs to feed")
    for s in specs:
        if len(s.shape) == 0:
            raise BadInputError(f"{source}: input '{s.name}' is a scalar; data sets need a batch axis on every input")
    sizes = {s.shape[0] for s in specs}
    if len(sizes) != 1:
        raise BadInputError(f"{source}: the model's inputs disagree on the batch size ({sorted(sizes)})")
    return sizes.pop()


def _check_array(name: str, arr: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    want = np.dtype(spec.dtype)
    per_sample = tuple(spec.shape[1:])
    if arr.ndim != len(spec.shape) or tuple(arr.shape[1:]) != per_sample:
        raise BadInputError(
            f"{source}: array '{name}' has shape {list(arr.shape)}; input '{spec.name}' needs [N, {', '.join(map(str, per_sample))}]"
            " (N samples along the batch axis)"
        )
    if arr.dtype != want:
        if not np.can_cast(arr.dtype, want, casting="same_kind"):
            raise BadInputError(f"{source}: array '{name}' is {arr.dtype.name}; input '{spec.name}' needs {want.name}")
        arr = arr.astype(want)
    return arr


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            return {path.stem: np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as e:
        kind = ".npy array" if path.suffix == ".npy" else ".npz archive of arrays"
        raise BadInputError(f"{path}: cannot read it as an {kind}: {e}") from None


def _arrays_for(path: Path, specs: list[TensorSpec]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    arrays = _read_arrays(path)
    labels = next((arrays.pop(k) for k in LABEL_KEYS if k in arrays), None)
    names = [s.name for s in specs]
    if all(n in arrays for n in names):
        picked = {n: arrays[n] for n in names}
    elif len(specs) == 1 and len(arrays) == 1:
        (only,) = arrays.values()
        picked = {names[0]: only}
    else:
        raise BadInputError(
            f"{path}: arrays {sorted(arrays)} do not name the model's inputs {names}"
            + (" (a single-input model also takes exactly one array of any name)" if len(specs) == 1 else "")
        )
    by_spec = {s.name: _check_array(s.name, picked[s.name], s, str(path)) for s in specs}
    counts = {len(a) for a in by_spec.values()}
    if len(counts) != 1:
        raise BadInputError(f"{path}: the input arrays hold different numbers of samples ({sorted(counts)})")
    count = counts.pop()
    if labels is not None:
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise BadInputError(f"{path}: 'labels' must be a 1-D integer array of class indices, got {labels.dtype.name}{list(labels.shape)}")
        if len(labels) != count:
            raise BadInputError(f"{path}: {len(labels)} labels for {count} samples")
    return by_spec, labels


def _random_arrays(specs: list[TensorSpec], count: int, seed: int) -> dict[str, np.ndarray]:
    from ..profiling.inputs import make_inputs

    per_sample = [TensorSpec(s.name, s.dtype, (1, *s.shape[1:])) for s in specs]
    samples = [make_inputs(None, per_sample, seed + i) for i in range(count)]
    return {s.name: np.concatenate([x[s.name] for x in samples]) for s in specs}


def load_dataset(spec: DataSpec | str, inputs: list[TensorSpec], *, need_labels: bool = False) -> Dataset:
    """Read ``spec`` for a model with ``inputs``; BadInputError (exit 2) names what is wrong with the data."""
    if isinstance(spec, str):
        spec = DataSpec(spec)
    batch = _batch_size(inputs, spec.source)
    labels: np.ndarray | None = None
    if spec.is_random:
        if need_labels:
            raise BadInputError("random data has no labels: give an .npz with inputs and 'labels' to measure accuracy")
        arrays = _random_arrays(inputs, spec.limit or batch, spec.seed)
    else:
        path = Path(spec.source)
        if path.is_dir():
            if len(inputs) != 1:
                raise BadInputError(f"{path}: a directory of images feeds single-input models; this one has {len(inputs)} inputs")
            arrays = {inputs[0].name: load_images(path, inputs[0], spec.preprocessing, spec.limit)}
        elif path.is_file():
            if path.suffix not in (".npz", ".npy"):
                raise BadInputError(
                    f"{path}: unknown data file type '{path.suffix}'; give an .npz, an .npy, a directory of images "
                    f"({' '.join(IMAGE_SUFFIXES)}) or 'random'"
                )
            arrays, labels = _arrays_for(path, inputs)
        else:
            raise BadInputError(f"{path}: no such file or directory (data: an .npz, an .npy, a directory of images, or 'random')")
    count = len(next(iter(arrays.values())))
    if spec.limit is not None and count > spec.limit:
        arrays = {k: v[: spec.limit] for k, v in arrays.items()}
        labels = labels[: spec.limit] if labels is not None else None
        count = spec.limit
    if count == 0:
        raise BadInputError(f"{spec.source}: holds no samples")
    if need_labels and labels is None:
        raise BadInputError(f"{spec.source}: has no 'labels' array; top-1 accuracy needs one class index per sample")
    batches, valid = [], []
    for start in range(0, count, batch):
        n = min(batch, count - start)
        feeds = {}
        for name, arr in arrays.items():
            chunk = arr[start:start + n]
            if n < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
            feeds[name] = np.ascontiguousarray(chunk)
        batches.append(feeds)
        valid.append(n)
    return Dataset(batches, valid, labels, spec.source)
