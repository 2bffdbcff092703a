"""`make colab-check`'s inputs: Colab's versions written once (colab-stack.txt), what the setup cell
installs, and the switch that makes a venv look like Colab to the setup cell."""

import os
import subprocess
import sys

from coursekit import colab
from coursekit.config import load_course, normalise, pinned_versions
from coursekit.notebooks import SETUP_TEMPLATE


def test_stack_names_colabs_versions_of_what_the_issue_lists():
    pins = colab.stack()
    assert pins["python"].startswith("3.13."), "Colab runs Python 3.13"
    for name in ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "matplotlib"):
        assert name in pins, f"colab-stack.txt has no {name}"
    assert (pins["torch"], pins["torchvision"]) == ("2.11.0", "0.26.0")


def test_setup_cell_packages_are_installed_at_the_lock_versions():
    lock = pinned_versions()
    wanted = {normalise(d) for a in load_course().assignments.values() for d in a.colab_packages}
    assert colab.deferred() == {d: lock[d] for d in wanted}
    assert not wanted & set(colab.stack()), "a package Colab has is also one the setup cell installs"


def test_constraints_are_the_lock_less_colabs_versions_and_the_cuda_build():
    stack = set(colab.stack())
    names = {normalise(line.split("==")[0]) for line in colab.constraints()}
    assert not names & stack
    assert not [n for n in names if n.startswith(("nvidia-", "cuda-")) or n == "triton"]
    assert "nbval" in names and all("===" not in line for line in colab.constraints())
    assert {normalise(r.split("==")[0]) for r in colab.requirements()} >= stack - {"python"} | {"nbval", "ipykernel"}


def test_pretend_makes_the_setup_cell_see_colab_only_when_asked():
    in_colab = next(line for line in SETUP_TEMPLATE.splitlines() if line.startswith("IN_COLAB = "))
    probe = f"exec({colab.PRETEND!r})\nimport sys\n{in_colab}\nprint(IN_COLAB)"
    for value, expected in (("1", "True"), ("", "False")):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             env={**os.environ, "COURSEKIT_COLAB": value}).stdout.strip()
        assert out == expected
