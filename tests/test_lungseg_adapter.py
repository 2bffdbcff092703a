"""unet_segmentation's data loader (its notebook cell `lung_data_loader`, run here with the setup cell).

The staged lungseg_128.npz is read as it is. Without it, the notebook downloads the course's
published copy (tests/test_lungseg_download.py); when that is impossible, it turns MedSegBench's
COVID-19 Radiography file into arrays of the same form. That file (21,165 X-rays) is not
downloaded here: the tests write a small file in MedSegBench's own format (`{split}_images`,
`{split}_label`, uint8, labels 0/1) under the name MedSegBench looks for, and read it with
MedSegBench's own `Covid19RadioMSBench` class. The class's `__len__` asserts the official split
sizes, which a small file cannot have; the adapter never calls it (it reads the dataset's arrays),
and a test below pins that down, so nothing in MedSegBench is patched.
"""

import os

import numpy as np
import pytest

from tests.lungseg_fixtures import DRAWN, FIXTURE_SIZES, loader_namespace, write_medsegbench_file

pytestmark = pytest.mark.usefixtures("home_in_tmp")


@pytest.mark.parametrize("layout", ["N,H,W", "N,H,W,1", "N,H,W,3 images"])
def test_medsegbench_file_becomes_course_arrays(tmp_path, monkeypatch, layout):
    write_medsegbench_file(tmp_path / "medsegbench", layout)
    ns = loader_namespace(tmp_path, monkeypatch, DRAWN)
    arrays, names, description = ns["load_lung_arrays"]()
    assert "MedSegBench" in description and names == {}
    assert list(arrays) == ["train", "val", "test"]
    for offset, (split, n) in zip((1, 3, 5), DRAWN.items()):
        images, masks = arrays[split]
        assert images.shape == masks.shape == (n, 128, 128)
        assert images.dtype == masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1}
        ks = (images[:, 0, 0].astype(int) - offset) // 10       # which fixture pair each one is
        assert len(set(ks)) == n and all(0 <= k < FIXTURE_SIZES[split] for k in ks), "drawn without repeats"
        for image, mask, k in zip(images, masks, ks):
            assert (image == offset + 10 * k).all(), "an image was changed"
            assert mask.sum() == 128 * (k + 1) and mask[: k + 1].all(), "a mask is not its own image's"


def test_subset_is_random_but_reproducible(tmp_path, monkeypatch):
    write_medsegbench_file(tmp_path / "medsegbench")
    ns = loader_namespace(tmp_path, monkeypatch, DRAWN)
    first, _, _ = ns["load_lung_arrays"]()
    second, _, _ = ns["load_lung_arrays"]()
    for split in DRAWN:
        assert np.array_equal(first[split][0], second[split][0])
    from medsegbench import Covid19RadioMSBench
    dataset = Covid19RadioMSBench(split="train", size=128, root=str(tmp_path / "medsegbench"))
    other_seed, _ = ns["medsegbench_arrays"](dataset, DRAWN["train"], seed=1)
    assert not np.array_equal(other_seed, first["train"][0]), "the seed should choose the subset"


def test_medsegbench_len_asserts_the_official_size(tmp_path, monkeypatch):
    """Why the adapter reads `dataset.imgs` instead of iterating: `len()` refuses a non-official file
    (and a real file has the official sizes, which the adapter then subsamples)."""
    write_medsegbench_file(tmp_path / "medsegbench")
    loader_namespace(tmp_path, monkeypatch)
    from medsegbench import INFO, Covid19RadioMSBench
    dataset = Covid19RadioMSBench(split="val", size=128, root=str(tmp_path / "medsegbench"))
    assert dataset.imgs.shape == (FIXTURE_SIZES["val"], 128, 128)
    with pytest.raises(AssertionError):
        len(dataset)
    assert INFO["covid19radio"]["n_samples"]["train"] >= 4 * 493, "the official file is large enough to subsample"


def test_staged_file_is_used_as_it_is(tmp_path, monkeypatch):
    staged = {}
    for split, n in DRAWN.items():
        staged[f"{split}_images"] = np.full((n, 128, 128), 7, np.uint8)
        staged[f"{split}_masks"] = np.ones((n, 128, 128), np.uint8)
        staged[f"{split}_names"] = np.array([f"CHNCXR_{k:04d}_0.png" for k in range(n)])
    (tmp_path / "lungseg").mkdir()
    np.savez_compressed(tmp_path / "lungseg" / "lungseg_128.npz", **staged)
    ns = loader_namespace(tmp_path, monkeypatch)
    arrays, names, description = ns["load_lung_arrays"]()
    assert "staged" in description
    assert not (tmp_path / "medsegbench").exists(), "nothing should be downloaded when the file is staged"
    for split, n in DRAWN.items():
        assert np.array_equal(arrays[split][0], staged[f"{split}_images"])
        assert list(names[split]) == list(staged[f"{split}_names"])


def test_nothing_staged_and_no_network_fails_fast_naming_both_files(tmp_path, monkeypatch):
    ns = loader_namespace(tmp_path, monkeypatch)

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(ns["socket"], "create_connection", unreachable)
    with pytest.raises(FileNotFoundError) as err:
        ns["load_lung_arrays"]()
    message = str(err.value)
    for needed in ("lungseg/lungseg_128.npz", "medsegbench/covid19radio_128.npz", "COURSE_DATA_DIR", "zenodo.org"):
        assert needed in message, f"the error should name {needed}: {message}"


def test_real_staged_file(monkeypatch):
    data_dir = os.environ.get("COURSE_DATA_DIR")
    if not data_dir or not os.path.isfile(os.path.join(data_dir, "lungseg", "lungseg_128.npz")):
        pytest.skip("lungseg/lungseg_128.npz is not staged")
    ns = loader_namespace(data_dir, monkeypatch)
    arrays, names, _ = ns["load_lung_arrays"]()
    assert {s: len(a[0]) for s, a in arrays.items()} == {"train": 493, "val": 71, "test": 140}
    assert all(set(np.unique(a[1])) == {0, 1} for a in arrays.values())
    assert len(names["test"]) == 140
