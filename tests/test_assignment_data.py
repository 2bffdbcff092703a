"""Each assignment declares the data files it reads once (course.toml `data`): the declaration
matches what its source notebook's cells name, and its Gradescope zip carries exactly those."""

import hashlib
import re
import zipfile

import pytest

from coursekit import notebooks as nbs
from coursekit.config import data_files, load_course
from coursekit.data import published_files
from coursekit.grading import gradescope

COURSE = load_course()
# A path under COURSE_DATA_DIR, as the loader cells write it: "medmnist/pneumoniamnist.npz".
DATA_PATH = re.compile(r"""["']([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\.(?:npz|npy|csv|h5|pt|zip))["']""")
# Named by a notebook but read only where its declared file cannot be had (never in a zip, which
# carries the declared file): unet_segmentation falls back to MedSegBench's lung masks.
FALLBACKS = {"unet_segmentation": {"medsegbench/covid19radio_128.npz"}}


def named_in_notebook(aid):
    source = nbs.read(COURSE.assignments[aid].notebook("source"))
    return {m for cell in source.cells if cell.cell_type == "code" for m in DATA_PATH.findall(cell.source)}


@pytest.mark.parametrize("aid", list(COURSE.assignments))
def test_declared_data_is_what_the_notebook_reads(aid):
    declared = set(COURSE.assignments[aid].data)
    assert declared, f"course.toml [assignments.{aid}] declares no data"
    assert named_in_notebook(aid) == declared | FALLBACKS.get(aid, set()), (
        f"{aid}: its notebook names {sorted(named_in_notebook(aid))}; course.toml declares {sorted(declared)}")


def test_the_data_files_are_where_the_readme_says():
    assert {f for a in COURSE.assignments.values() for f in a.data} == {
        "medmnist/pneumoniamnist.npz", "lungseg/lungseg_128.npz"}
    assert COURSE.assignments["unet_segmentation"].data == ("lungseg/lungseg_128.npz",)
    for aid in ("resnet_blocks", "pneumonia_training", "resnet_from_scratch"):
        assert COURSE.assignments[aid].data == ("medmnist/pneumoniamnist.npz",)


@pytest.mark.parametrize("name", ["/etc/passwd", "../data.npz", "medmnist//x.npz", "medmnist/"])
def test_a_data_path_outside_the_data_folder_is_refused(name):
    with pytest.raises(ValueError, match="is not a path under COURSE_DATA_DIR"):
        data_files("resnet_blocks", [name])


@pytest.mark.parametrize("aid", list(COURSE.assignments))
def test_each_zip_carries_exactly_its_assignments_data(aid, tmp_path):
    """Every course data file staged (small stand-ins); the zip takes only the assignment's."""
    data_dir = tmp_path / "data"
    every = {f for a in COURSE.assignments.values() for f in a.data}
    for relative in every:
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / relative).write_bytes(relative.encode())
    path = gradescope.export(aid, tmp_path / f"{aid}.zip", data_dir=data_dir)
    with zipfile.ZipFile(path) as z:
        carried = {n.removeprefix("data/") for n in z.namelist() if n.startswith("data/")}
        sums = z.read("data.sha256").decode().split("\n")
        urls = z.read("data.urls").decode()
    assert carried == set(COURSE.assignments[aid].data)
    assert sorted(sums[:-1]) == sorted(f"{hashlib.sha256(f.encode()).hexdigest()}  {f}" for f in carried)
    assert urls == ""


def test_an_unstaged_published_file_is_downloaded_by_setup(tmp_path):
    """Not staged: the zip lists its published URL and sha256 (from course.toml) for setup.sh."""
    spec = published_files()["lungseg"]
    path = gradescope.export("unet_segmentation", tmp_path / "u.zip", data_dir=tmp_path / "empty")
    with zipfile.ZipFile(path) as z:
        assert not [n for n in z.namelist() if n.startswith("data/")]
        assert z.read("data.sha256").decode() == f"{spec.sha256}  {spec.file}\n"
        assert z.read("data.urls").decode() == f" {spec.file} {spec.url}\n"
    with pytest.raises(FileNotFoundError, match="medmnist/pneumoniamnist.npz is neither staged"):
        gradescope.export("resnet_blocks", tmp_path / "r.zip", data_dir=tmp_path / "empty")
