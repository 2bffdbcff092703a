"""unet_segmentation's data loader as the lungseg tests run it (tests/test_lungseg_adapter.py,
tests/test_lungseg_download.py): its setup and loader cells executed, and a small file in
MedSegBench's own format."""

import socket

import numpy as np

from coursekit import notebooks as nbs
from coursekit.config import load_course

ASSIGNMENT = load_course().assignments["unet_segmentation"]
FIXTURE_SIZES = {"train": 12, "val": 6, "test": 8}
DRAWN = {"train": 5, "val": 3, "test": 4}


def loader_namespace(data_dir, monkeypatch, split_sizes=None, offline=True):
    """The setup cell and the loader cell, executed with COURSE_DATA_DIR=data_dir. With `offline`,
    the course file's download URL points at a closed port on 127.0.0.1 (refused at once: "cannot
    be downloaded"), so these tests never reach the network; tests/test_lungseg_download.py serves
    the file locally."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    namespace = {}
    exec(nbs.setup_source(ASSIGNMENT), namespace)
    cell = nbs.cells_by_grade_id(nbs.read(ASSIGNMENT.notebook("source")))["lung_data_loader"]
    exec(cell.source, namespace)
    if offline:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            namespace["LUNGSEG_URL"] = f"http://127.0.0.1:{s.getsockname()[1]}/lungseg_128.npz"
    if split_sizes is not None:
        namespace["SPLIT_SIZES"].clear()
        namespace["SPLIT_SIZES"].update(split_sizes)
    return namespace


def fixture_pair(split_offset, k, layout="N,H,W"):
    """Image k of a split is filled with one grey value; its mask has k + 1 full rows set."""
    image = np.full((128, 128), split_offset + 10 * k, dtype=np.uint8)
    label = np.zeros((128, 128), dtype=np.uint8)
    label[: k + 1] = 1
    if layout == "N,H,W,1":
        image, label = image[..., None], label[..., None]
    elif layout == "N,H,W,3 images":
        image = np.repeat(image[..., None], 3, axis=-1)
    return image, label


def write_medsegbench_file(folder, layout="N,H,W"):
    """covid19radio_128.npz as MedSegBench stores it (names and key layout of medsegbench.dataset:
    `{split}_images` and `{split}_label`, uint8, labels 0/1; MedSegBench's own data loader is read
    with the same layout). Variants: a trailing channel axis, RGB copies of the images."""
    arrays = {}
    for offset, (split, n) in zip((1, 3, 5), FIXTURE_SIZES.items()):
        pairs = [fixture_pair(offset, k, layout) for k in range(n)]
        arrays[f"{split}_images"] = np.stack([p[0] for p in pairs])
        arrays[f"{split}_label"] = np.stack([p[1] for p in pairs])
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "covid19radio_128.npz", **arrays)
