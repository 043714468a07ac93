"""A directory of images as samples for a single-input image model.

Preprocessing, in order (the usual ImageNet evaluation transform, sized to the model's input):

1. decode with Pillow and convert to RGB (3-channel input) or greyscale (1-channel input);
2. resize (bilinear) so the shorter side is ``max(H, W) / crop`` pixels (``crop`` 0.875: 256 for a 224 input);
3. centre-crop H x W, the model's input size;
4. scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel (defaults: ImageNet's
   mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225 for RGB; 0 and 1 for greyscale);
5. lay out as the model's input: NCHW or NHWC, found from where the 1- or 3-channel axis is
   (``layout`` overrides), in the input's float dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import BadInputError
from ..graph.io import TensorSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocessing:
    """How images become input tensors (see the module docstring); None means the default."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Literal["NCHW", "NHWC"] | None = None
    crop: float = 0.875

    def __post_init__(self) -> None:
        if not 0.0 < self.crop <= 1.0:
            raise BadInputError(f"image crop fraction must be in (0, 1], got {self.crop}")
        if self.std is not None and any(s == 0 for s in self.std):
            raise BadInputError("image std must not contain 0")
        if self.layout not in (None, "NCHW", "NHWC"):
            raise BadInputError(f"image layout must be NCHW or NHWC, got {self.layout}")


def image_geometry(spec: TensorSpec, layout: str | None) -> tuple[str, int, int, int]:
    """(layout, channels, height, width) of an image input, or BadInputError saying why it is not one."""
    shape = spec.shape
    if len(shape) != 4 or np.dtype(spec.dtype).kind != "f":
        raise BadInputError(
            f"input '{spec.name}' is {spec.dtype}{list(shape)}: images feed a float input of rank 4 (NCHW or NHWC)"
        )
    if layout is None:
        if shape[1] in (1, 3):
            layout = "NCHW"
        elif shape[3] in (1, 3):
            layout = "NHWC"
        else:
            raise BadInputError(f"input '{spec.name}' {list(shape)} has no 1- or 3-channel axis at position 1 or 3")
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if c not in (1, 3):
        raise BadInputError(f"input '{spec.name}' {list(shape)} in {layout} has {c} channels; images give 1 or 3")
    return layout, c, h, w


def list_images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def preprocess_image(path: Path, channels: int, height: int, width: int, prep: ImagePreprocessing) -> np.ndarray:
    """One image as a float32 array [C, H, W], preprocessed as the module docstring says."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            short = max(height, width) / prep.crop
            scale = short / min(img.size)
            size = (max(width, round(img.size[0] * scale)), max(height, round(img.size[1] * scale)))
            img = img.resize(size, Image.Resampling.BILINEAR)
            left, top = (size[0] - width) // 2, (size[1] - height) // 2
            img = img.crop((left, top, left + width, top + height))
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadInputError(f"{path}: cannot read it as an image: {e}") from None
    arr = arr.reshape(height, width, channels).transpose(2, 0, 1)
    mean = np.asarray(prep.mean if prep.mean is not None else (IMAGENET_MEAN if channels == 3 else (0.0,)), np.float32)
    std = np.asarray(prep.std if prep.std is not None else (IMAGENET_STD if channels == 3 else (1.0,)), np.float32)
    for name, v in (("mean", mean), ("std", std)):
        if v.size not in (1, channels):
            raise BadInputError(f"image {name} has {v.size} values; the input has {channels} channels")
    return (arr - mean.reshape(-1, 1, 1)) / std.reshape(-1, 1, 1)


def load_images(directory: Path, spec: TensorSpec, prep: ImagePreprocessing, limit: int | None = None) -> np.ndarray:
    """Images of ``directory`` (sorted by name, at most ``limit``) as one array [N, *spec.shape[1:]]."""
    layout, c, h, w = image_geometry(spec, prep.layout)
    files = list_images(directory)
    if not files:
        raise BadInputError(f"{directory}: no images ({' '.join(IMAGE_SUFFIXES)}) in this directory")
    arrays = [preprocess_image(p, c, h, w, prep) for p in files[:limit]]
    batch = np.stack(arrays)
    if layout == "NHWC":
        batch = batch.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(batch.astype(np.dtype(spec.dtype)))
