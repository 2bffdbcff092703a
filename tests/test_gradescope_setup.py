"""The Gradescope image build (coursekit/grading/gradescope_setup.sh, the zip's setup.sh), run here as
far as it can be without Gradescope: with an interpreter supplied (PYTHON) and, where a test says
so, no package install (SKIP_PIP=1, the venv linked to this one as tests/test_gradescope.py does).
Its one step that downloads from outside the package registries (the interpreter, the CPU wheels)
is not run here: autograder/README.md names it."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit import REPO, pyversion
from coursekit.config import normalise, pinned_versions
from coursekit.grading import gradescope

SCRIPT = REPO / "coursekit" / "grading" / "gradescope_setup.sh"
DATA = {"medmnist/tiny.npz": b"pneumonia " * 100, "lungseg/tiny.npz": b"lungs " * 50}


def autograder_root(tmp_path):
    """$AUTOGRADER_ROOT laid out as Gradescope unzips the export (setup.sh, requirements.txt, kit/, data)."""
    root = tmp_path / "autograder"
    src = root / "source"
    (src / "kit" / "coursekit").mkdir(parents=True)
    (src / "setup.sh").write_text(gradescope.SETUP_SH)
    shutil.copy(REPO / "requirements.txt", src / "requirements.txt")
    shutil.copy(REPO / "coursekit" / "pyversion.py", src / "kit" / "coursekit" / "pyversion.py")
    sums = []
    for name, data in DATA.items():
        (src / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (src / "data" / name).write_bytes(data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (src / "data.sha256").write_text("\n".join(sums) + "\n")
    (src / "data.urls").write_text("")
    return root


def setup(root, python, skip_pip=True, link_venv=True):
    if link_venv:
        os.symlink(sys.prefix, root / "venv")                 # what the pip install would have made
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "PYTHON": str(python),
           "COURSEKIT_PREFIX": str(root.parent / "opt"), "SKIP_PIP": "1" if skip_pip else "0"}
    return subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=300)


def test_setup_with_a_supplied_interpreter_builds_the_image(tmp_path):
    root = autograder_root(tmp_path)
    out = setup(root, sys.executable)
    assert out.returncode == 0, out.stdout + out.stderr
    version = ".".join(map(str, sys.version_info[:3]))
    assert f"setup.sh: Python {version} · torch {pinned_versions()['torch']}" in out.stdout
    for name, data in DATA.items():
        assert (root / "data" / name).read_bytes() == data
        assert (root / "data" / name).stat().st_mode & 0o777 == 0o644        # the sandbox uid reads the data
    assert (root / "source").stat().st_mode & 0o777 == 0o700                # and never the source
    assert root.stat().st_mode & 0o001, "the sandbox uid cannot reach $AUTOGRADER_ROOT/venv"
    assert (root.parent / "opt").stat().st_mode & 0o777 == 0o755


def test_setup_refuses_an_old_interpreter_before_installing(tmp_path):
    old = next(iter(sorted(Path("/root/.pyenv/versions").glob("3.10.*/bin/python"))), None)
    if old is None:
        pytest.skip("no Python 3.10 here (pyenv's 3.10 on these machines)")
    root = autograder_root(tmp_path)
    out = setup(root, old, skip_pip=False, link_venv=False)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"setup.sh: the interpreter cannot build the course's environment: Python 3.10.{old.parts[-3].split('.')[2]} "
        f"is outside the supported range ({old}): this course needs {pyversion.RANGE}; get one ({pyversion.HOW}), "
        f"then run: set PYTHON_VERSION in setup.sh to a final release in the range"]
    assert not (root / "venv").exists() and not (root / "data").exists()


def test_setup_refuses_a_release_candidate(tmp_path):
    """Ubuntu 22.04's python3.11 package reports a 3.11.0 release candidate."""
    fake = tmp_path / "python3.11"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import runpy, sys; "
                    f"sys.version_info = (3, 11, 0, \"candidate\", 1); sys.argv = sys.argv[1:]; "
                    f"runpy.run_path(sys.argv[0], run_name=\"__main__\")' \"$@\"\n")
    fake.chmod(0o755)
    root = autograder_root(tmp_path)
    out = setup(root, fake, link_venv=False)
    assert out.returncode == 1
    assert out.stderr.startswith("setup.sh: the interpreter cannot build the course's environment: "
                                 "Python 3.11.0rc1 is a pre-release"), out.stderr
    assert not (root / "venv").exists()


def test_setup_fails_clearly_when_torch_does_not_import(tmp_path):
    root = autograder_root(tmp_path)
    out = setup(root, sys.executable, link_venv=False)                      # a fresh venv, nothing installed
    assert out.returncode == 1
    assert "ModuleNotFoundError: No module named 'torch'" in out.stderr
    assert out.stderr.splitlines()[-1] == (f"setup.sh: torch does not import in {root / 'venv'} (the error above); "
                                           "rerun setup.sh without SKIP_PIP")


def test_setup_refuses_data_that_does_not_match_its_checksum(tmp_path):
    root = autograder_root(tmp_path)
    (root / "source" / "data" / "lungseg" / "tiny.npz").write_bytes(b"tampered")
    out = setup(root, sys.executable)
    assert out.returncode == 1
    assert "lungseg/tiny.npz: FAILED" in out.stdout + out.stderr
    assert out.stderr.splitlines()[-1] == "setup.sh: the course data does not match data.sha256 (above: which file)"


def test_setup_names_data_it_cannot_get(tmp_path):
    root = autograder_root(tmp_path)
    (root / "source" / "data" / "medmnist" / "tiny.npz").unlink()
    out = setup(root, sys.executable)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == "setup.sh: medmnist/tiny.npz is neither in the zip nor listed in data.urls"


def script_functions(src, call):
    """Run one of setup.sh's functions on the real lock, without running the script."""
    text = SCRIPT.read_text()
    functions = "".join(text[text.index(f"\n{name}() {{"):text.index("\n}\n", text.index(f"\n{name}() {{")) + 3]
                        for name in ("fail", "pinned", "cpu_lock"))
    return subprocess.run(["bash", "-c", f"set -euo pipefail\nSRC={src}\n{functions}\n{call}"],
                          capture_output=True, text=True, check=True).stdout


def test_cpu_lock_is_the_lock_less_the_cuda_build(tmp_path):
    root = autograder_root(tmp_path)
    assert script_functions(root / "source", "pinned torch").strip() == pinned_versions()["torch"] == "2.13.0"
    assert script_functions(root / "source", "pinned torchvision").strip() == pinned_versions()["torchvision"]
    cpu = script_functions(root / "source", "cpu_lock").splitlines()
    full = (REPO / "requirements.txt").read_text().splitlines()
    dropped = [line for line in full if line not in cpu]
    names = {normalise(line.split("=")[0].split(";")[0].strip()) for line in dropped}
    assert names == {"torch", "torchvision", "triton"} | {n for n in names if n.startswith(("nvidia-", "cuda-"))}
    assert any(n.startswith("nvidia-cudnn") for n in names) and "cuda-toolkit" in names
    assert [line for line in full if line in cpu] == cpu, "cpu_lock changed a line it kept"
    assert len(cpu) == len(full) - len(dropped)
