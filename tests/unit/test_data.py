"""Calibration / evaluation data readers: .npz, .npy, image directories, random; bad files give one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecc.data import DataSpec, ImagePreprocessing, load_dataset
from edgecc.data.images import IMAGENET_MEAN, IMAGENET_STD
from edgecc.errors import BadInputError
from edgecc.graph.io import TensorSpec

IMG = [TensorSpec("image", "float32", (1, 3, 8, 8))]


def test_npz_named_by_input_is_batched_and_padded(tmp_path):
    x = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    np.savez(tmp_path / "d.npz", x=x, labels=np.array([0, 1, 2, 3, 0]))
    ds = load_dataset(str(tmp_path / "d.npz"), [TensorSpec("x", "float32", (2, 4))])
    assert ds.valid == [2, 2, 1] and ds.samples == 5
    assert [b["x"].shape for b in ds.batches] == [(2, 4)] * 3
    np.testing.assert_array_equal(ds.batches[1]["x"], x[2:4])
    np.testing.assert_array_equal(ds.batches[2]["x"], np.stack([x[4], x[4]]))  # padded with its last sample
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 3, 0])


def test_single_input_takes_any_one_array_and_casts_within_kind(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((3, 1, 4), dtype=np.float64))
    ds = load_dataset(str(tmp_path / "d.npy"), [TensorSpec("in", "float32", (1, 1, 4))])
    assert ds.samples == 3 and ds.batches[0]["in"].dtype == np.float32 and ds.labels is None
    np.savez(tmp_path / "u8.npz", pixels=np.full((2, 1, 4), 7, dtype=np.uint8), labels=np.array([1, 2]))
    ds = load_dataset(str(tmp_path / "u8.npz"), [TensorSpec("in", "float32", (1, 1, 4))])
    assert ds.batches[1]["in"].dtype == np.float32 and float(ds.batches[1]["in"][0, 0, 0]) == 7.0


def test_limit_keeps_the_first_samples(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(10, dtype=np.float32).reshape(10, 1), labels=np.arange(10))
    ds = load_dataset(DataSpec(str(tmp_path / "d.npz"), limit=3), [TensorSpec("x", "float32", (1, 1))])
    assert ds.samples == 3 and [float(b["x"][0, 0]) for b in ds.batches] == [0.0, 1.0, 2.0]
    assert list(ds.labels) == [0, 1, 2]


def test_random_is_seeded_and_has_no_labels():
    a = load_dataset(DataSpec("random", limit=4), IMG)
    b = load_dataset(DataSpec("random", limit=4), IMG)
    assert a.samples == 4 and all(np.array_equal(x["image"], y["image"]) for x, y in zip(a.batches, b.batches))
    assert not np.array_equal(a.batches[0]["image"], a.batches[1]["image"])
    with pytest.raises(BadInputError, match="random data has no labels"):
        load_dataset("random", IMG, need_labels=True)


def _write_image(path, color, size=(20, 10), mode="RGB"):
    Image.new(mode, size, color).save(path)


def test_image_directory_preprocessing_is_the_documented_one(tmp_path):
    _write_image(tmp_path / "b.png", (255, 0, 128))
    _write_image(tmp_path / "a.jpg", (0, 0, 0))
    (tmp_path / "readme.txt").write_text("not an image, ignored")
    ds = load_dataset(str(tmp_path), IMG)
    assert ds.samples == 2 and ds.batches[0]["image"].shape == (1, 3, 8, 8)
    first, second = ds.batches[0]["image"][0], ds.batches[1]["image"][0]  # sorted by name: a.jpg, b.png
    expected = (np.array([255, 0, 128]) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(second[:, 4, 4], expected, rtol=1e-5)
    np.testing.assert_allclose(first[:, 0, 0], -np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD), atol=0.05)  # JPEG


def test_image_layout_channels_and_custom_normalisation(tmp_path):
    _write_image(tmp_path / "g.png", (200, 100, 50))
    nhwc = load_dataset(DataSpec(str(tmp_path), ImagePreprocessing(mean=(0.5,), std=(0.5,))),
                        [TensorSpec("x", "float32", (1, 6, 6, 3))])
    assert nhwc.batches[0]["x"].shape == (1, 6, 6, 3)
    np.testing.assert_allclose(nhwc.batches[0]["x"][0, 2, 2], (np.array([200, 100, 50]) / 255.0 - 0.5) / 0.5, rtol=1e-5)
    grey = load_dataset(str(tmp_path), [TensorSpec("x", "float32", (1, 1, 4, 4))])
    luma = (200 * 299 + 100 * 587 + 50 * 114) / 1000  # Pillow's L conversion
    assert abs(float(grey.batches[0]["x"][0, 0, 1, 1]) - round(luma) / 255.0) < 1e-6


def _save_npy_as(path, arr):
    with open(path, "wb") as f:  # np.save would append .npy to the name
        np.save(f, arr)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: (p / "d.npz").write_bytes(b"not a zip"), "cannot read it as an .npz archive"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((4, 3, 9, 9), np.float32)), "has shape [4, 3, 9, 9]; input 'image' needs [N, 3, 8, 8]"),
    (lambda p: np.savez(p / "d.npz", a=np.zeros((2, 3, 8, 8)), b=np.zeros((2, 3, 8, 8))), "do not name the model's inputs"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((2, 3, 8, 8), np.float32), labels=np.array([1])), "1 labels for 2 samples"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((2, 3, 8, 8), np.float32), labels=np.array([0.5, 1.0])), "'labels' must be a 1-D integer"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((2, 3, 8, 8), np.complex64)), "is complex64; input 'image' needs float32"),
    (lambda p: _save_npy_as(p / "d.npz", np.array([{"a": 1}], dtype=object)), "cannot read it as an .npz archive"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((0, 3, 8, 8), np.float32)), "holds no samples"),
])
def test_bad_array_files_are_clear_errors(tmp_path, make, fragment):
    make(tmp_path)
    with pytest.raises(BadInputError) as e:
        load_dataset(str(tmp_path / "d.npz"), IMG)
    assert fragment in str(e.value)


def test_bad_image_directories_and_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no images"):
        load_dataset(str(tmp_path / "empty"), IMG)
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_image(bad / "a.png", (1, 2, 3))
    (bad / "b.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    with pytest.raises(BadInputError, match=r"b\.jpg: cannot read it as an image"):
        load_dataset(str(bad), IMG)
    with pytest.raises(BadInputError, match="no such file or directory"):
        load_dataset(str(tmp_path / "missing.npz"), IMG)
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(BadInputError, match=r"unknown data file type '\.csv'"):
        load_dataset(str(tmp_path / "d.csv"), IMG)
    with pytest.raises(BadInputError, match="images feed a float input of rank 4"):
        load_dataset(str(bad), [TensorSpec("ids", "int64", (1, 16))])
    with pytest.raises(BadInputError, match="image mean has 2 values; the input has 3 channels"):
        load_dataset(DataSpec(str(tmp_path / "bad"), ImagePreprocessing(mean=(0.1, 0.2))), IMG, need_labels=False)
