"""The notebooks' data access (the generated setup cell): staged data is used as is, and a
missing file with no network fails fast with a message that says what to do."""

import os
import time

import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course


def setup_namespace(data_dir, monkeypatch):
    """Run the setup cell (as the notebooks have it) with COURSE_DATA_DIR=data_dir."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    namespace = {}
    exec(nbs.setup_source(load_course().assignments["resnet_blocks"]), namespace)
    return namespace


def test_staged_file_is_read_without_download(monkeypatch):
    data_dir = os.environ.get("COURSE_DATA_DIR")
    if not data_dir:
        pytest.skip("COURSE_DATA_DIR is not set")
    ns = setup_namespace(data_dir, monkeypatch)
    folder, must_download = ns["locate_data"]("medmnist/pneumoniamnist.npz", "zenodo.org")
    assert must_download is False
    from medmnist import PneumoniaMNIST
    val = PneumoniaMNIST(split="val", root=str(folder), download=must_download)
    image, label = val[0]
    assert len(val) == 524 and image.size == (28, 28) and label.shape == (1,)


def test_missing_file_without_network_fails_fast_and_says_why(tmp_path, monkeypatch):
    ns = setup_namespace(tmp_path, monkeypatch)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        ns["locate_data"]("medmnist/pneumoniamnist.npz", "download-host.invalid")
    assert time.monotonic() - start < 10
    message = str(err.value)
    for needed in ("medmnist/pneumoniamnist.npz", "COURSE_DATA_DIR", "download-host.invalid", str(tmp_path)):
        assert needed in message, f"the error should name {needed}: {message}"


def test_setup_reports_the_device(tmp_path, monkeypatch, capsys):
    ns = setup_namespace(tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert ns["device"].type in ("cpu", "cuda")
    assert ("GPU runtime is ON" in out) == (ns["device"].type == "cuda")
    assert "GPU runtime is OFF" in out or "GPU runtime is ON" in out
