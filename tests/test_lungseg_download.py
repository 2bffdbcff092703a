"""unet_segmentation's download path: the course's lung file fetched with pooch (its notebook cell
`lung_data_loader`, run here with the setup cell), and `make publish-data`.

No network: a local HTTP server on 127.0.0.1 plays the course's release page. It serves either a
small file in the course's format (its checksum put into the cell's LUNGSEG_SHA256) or, when it is
staged, the real lungseg_128.npz checked against the checksum the notebook ships with.
"""

import http.server
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from coursekit.cli import main as coursekit
from coursekit.config import load_course
from coursekit.data import expected_url, published_files, sha256_of
from tests.lungseg_fixtures import DRAWN, loader_namespace, write_medsegbench_file

SPEC = published_files()["lungseg"]


def real_file():
    """The staged real lungseg_128.npz, or None."""
    path = Path(os.environ.get("COURSE_DATA_DIR", "/nonexistent")) / SPEC.file
    return path if path.is_file() else None


@pytest.fixture(autouse=True)
def no_proxy(home_in_tmp, monkeypatch):
    """The local server is never reached through a proxy (and HOME is a temporary folder)."""
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; `requests` lists the paths asked for."""
    root = tmp_path / "www"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{httpd.server_port}", requests=requests)
    httpd.shutdown()
    httpd.server_close()


def closed_local_url():
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/lungseg_128.npz"


def write_course_file(path):
    """A small file in the course's format (keys {split}_images, _masks, _names)."""
    arrays = {}
    for k, (split, n) in enumerate(DRAWN.items()):
        arrays[f"{split}_images"] = np.full((n, 128, 128), 40 + k, np.uint8)
        arrays[f"{split}_masks"] = np.zeros((n, 128, 128), np.uint8)
        arrays[f"{split}_masks"][:, 30:90, 20:60] = 1
        arrays[f"{split}_names"] = np.array([f"MCUCXR_{i:04d}_0.png" for i in range(n)])
    np.savez_compressed(path, **arrays)
    return arrays


def published(ns, server, name="lungseg_128.npz", sha256=None):
    """Point the notebook's cell at the local server (and at the served file's checksum)."""
    ns["LUNGSEG_URL"] = f"{server.url}/{name}"
    if sha256 is not None:
        ns["LUNGSEG_SHA256"] = sha256


def test_download_checks_the_checksum_and_caches(tmp_path, server, monkeypatch):
    served = write_course_file(server.root / "lungseg_128.npz")
    ns = loader_namespace(tmp_path / "data", monkeypatch, DRAWN)
    published(ns, server, sha256=sha256_of(server.root / "lungseg_128.npz"))

    arrays, names, description = ns["load_lung_arrays"]()
    assert "downloaded, checksum verified" in description
    assert server.requests == ["/lungseg_128.npz"]
    cached = tmp_path / "data" / "lungseg" / "lungseg_128.npz"
    assert cached.is_file() and sha256_of(cached) == ns["LUNGSEG_SHA256"], "the file is kept under COURSE_DATA_DIR"
    for split in DRAWN:
        assert np.array_equal(arrays[split][0], served[f"{split}_images"])
        assert list(names[split]) == list(served[f"{split}_names"])

    # Cache hit: the next run reads the kept copy; pooch itself does not download it again either.
    _, _, description = ns["load_lung_arrays"]()
    assert "staged" in description
    path, why = ns["download_course_file"]()
    assert path == cached and why == ""
    assert server.requests == ["/lungseg_128.npz"], "a cached file must not be downloaded again"


def test_real_file_matches_the_notebooks_checksum(tmp_path, server, monkeypatch):
    """The course's real file, served as the release would serve it, passes the checksum the
    notebook ships with (the same as course.toml's)."""
    real = real_file()
    if real is None:
        pytest.skip(f"{SPEC.file} is not staged")
    shutil.copyfile(real, server.root / "lungseg_128.npz")
    ns = loader_namespace(tmp_path / "data", monkeypatch)
    published(ns, server)                       # the notebook's own LUNGSEG_SHA256
    arrays, names, description = ns["load_lung_arrays"]()
    assert "downloaded, checksum verified" in description
    assert {s: len(a[0]) for s, a in arrays.items()} == {"train": 493, "val": 71, "test": 140}
    assert len(names["test"]) == 140


def test_a_corrupted_file_is_refused_with_a_clear_message(tmp_path, server, monkeypatch):
    write_course_file(server.root / "lungseg_128.npz")
    expected = sha256_of(server.root / "lungseg_128.npz")
    data = bytearray((server.root / "lungseg_128.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF                # one byte changed on the way
    (server.root / "lungseg_128.npz").write_bytes(bytes(data))
    write_medsegbench_file(tmp_path / "data" / "medsegbench")   # a fallback that must NOT be used
    ns = loader_namespace(tmp_path / "data", monkeypatch, DRAWN)
    published(ns, server, sha256=expected)

    with pytest.raises(ValueError) as err:
        ns["load_lung_arrays"]()
    message = str(err.value)
    for needed in ("not the course's lung file", expected, "refused", "nothing was kept",
                   "tell your instructor", ns["LUNGSEG_URL"]):
        assert needed in message, f"the error should say {needed!r}: {message}"
    assert not (tmp_path / "data" / "lungseg" / "lungseg_128.npz").exists(), "the refused file was kept"
    assert [p.name for p in (tmp_path / "data" / "lungseg").iterdir()] == [], "a partial download was left"


def test_file_not_published_falls_back_to_medsegbench(tmp_path, server, monkeypatch, capsys):
    write_medsegbench_file(tmp_path / "data" / "medsegbench")
    ns = loader_namespace(tmp_path / "data", monkeypatch, DRAWN)
    published(ns, server, name="not-there.npz")
    path, why = ns["download_course_file"]()
    assert path is None and "404" in why
    arrays, names, description = ns["load_lung_arrays"]()
    assert "MedSegBench" in description and names == {}
    assert {s: len(a[0]) for s, a in arrays.items()} == DRAWN
    assert "cannot be downloaded" in capsys.readouterr().out


def test_no_network_stops_at_once_naming_files_folder_and_hosts(tmp_path, monkeypatch):
    ns = loader_namespace(tmp_path, monkeypatch)
    ns["LUNGSEG_URL"] = closed_local_url()
    real_connect = socket.create_connection

    def offline(address, *args, **kwargs):     # only the loopback answers, as on a machine offline
        if address[0] in ("127.0.0.1", "localhost"):
            return real_connect(address, *args, **kwargs)
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        ns["load_lung_arrays"]()
    assert time.monotonic() - start < 3, "no network must stop the cell at once"
    message = str(err.value)
    for needed in ("lungseg/lungseg_128.npz", ns["LUNGSEG_URL"], "medsegbench/covid19radio_128.npz",
                   "zenodo.org", "COURSE_DATA_DIR", str(tmp_path)):
        assert needed in message, f"the error should name {needed}: {message}"


def test_notebook_and_course_toml_agree(tmp_path, monkeypatch):
    ns = loader_namespace(tmp_path, monkeypatch, offline=False)     # the cell's own values
    assert ns["LUNGSEG_FILE"] == SPEC.file
    assert ns["LUNGSEG_URL"] == SPEC.url, "the loader cell's LUNGSEG_URL differs from course.toml's [data.lungseg] url"
    assert ns["LUNGSEG_SHA256"] == SPEC.sha256, "the loader cell's LUNGSEG_SHA256 differs from course.toml's"
    course = load_course()
    assert SPEC.url == expected_url(SPEC, course.github_repo), (
        "url must be the asset of release_tag in github_repo (course.toml)")
    assert "pooch" in course.assignments["unet_segmentation"].colab_packages, "Colab must install pooch"


def test_publish_data_prints_checksum_and_upload_step(tmp_path, monkeypatch, capsys):
    staged = tmp_path / SPEC.file
    staged.parent.mkdir(parents=True)
    write_course_file(staged)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    # A file other than the published one: its checksum and what to change, exit status 1.
    assert coursekit(["publish-data", "lungseg"]) == 1
    out = capsys.readouterr().out
    digest = sha256_of(staged)
    course = load_course()
    for needed in (digest, "this is another file", f"gh release create {SPEC.release_tag} {staged} "
                   f"--repo {course.github_repo}", SPEC.url):
        assert needed in out, f"publish-data should print {needed!r}:\n{out}"
    # Nothing staged: says where it looked.
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    assert coursekit(["publish-data"]) == 1
    assert "not staged" in capsys.readouterr().out


def test_publish_data_on_the_real_file(monkeypatch, capsys):
    if real_file() is None:
        pytest.skip(f"{SPEC.file} is not staged")
    assert coursekit(["publish-data"]) == 0
    out = capsys.readouterr().out
    assert SPEC.sha256 in out and f"gh release create {SPEC.release_tag}" in out and "another file" not in out
