"""Colab's stack for `make colab-check`: what to install, and the check that the setup cell's Colab
path ran.

    python -m coursekit.colab requirements   the packages to install (colab-stack.txt's versions, then
                                             the lock's for the test harness and the rest)
    python -m coursekit.colab constraints    the lock less what Colab's versions replace (and the CUDA
                                             libraries of torch 2.13, which torch 2.11 does not use)
    python -m coursekit.colab deferred       what the notebooks' setup cell installs in Colab
                                             (course.toml colab_packages, at the lock's versions)
    python -m coursekit.colab python         Colab's Python version
    python -m coursekit.colab installed      exit 1 unless every deferred package is installed at its pin
    python -m coursekit.colab pretend        in this venv, with COURSEKIT_COLAB=1, make every Python
                                             process look like Colab to the setup cell

Standard library and coursekit.config only: it runs in the Colab-stack venv before anything else.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys

from . import REPO
from .config import load_course, normalise, pinned_versions

STACK = REPO / "colab-stack.txt"
# The notebooks' test harness (nbval, a kernel) and the packages the notebooks import that Colab has
# at versions colab-stack.txt does not name: at the lock's versions.
HARNESS = ("nbval", "pytest", "pytest-xdist", "ipykernel", "nbformat", "nbclient", "ipywidgets")
CUDA_ONLY = re.compile(r"(nvidia-.*|cuda-.*|triton)")


def stack() -> dict[str, str]:
    """{normalised name: version} of colab-stack.txt, python included."""
    pins = {}
    for line in STACK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][^\s]*)", line)
            if not m:
                raise ValueError(f"colab-stack.txt: '{line}' is not an exact pin")
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def deferred() -> dict[str, str]:
    """What the setup cells install in Colab, at the lock's versions."""
    lock = pinned_versions()
    return {normalise(d): lock[normalise(d)] for a in load_course().assignments.values() for d in a.colab_packages}


def requirements() -> list[str]:
    colab = {n: v for n, v in stack().items() if n != "python"}
    lock = pinned_versions()
    harness = {n: lock[n] for n in map(normalise, HARNESS) if n not in colab}
    return [f"{n}=={v}" for n, v in {**colab, **harness}.items()]


def constraints() -> list[str]:
    colab = stack()
    lines = []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*===?", line)
        if m and normalise(m.group(1)) not in colab and not CUDA_ONLY.fullmatch(normalise(m.group(1))):
            lines.append(line.replace("===", "=="))
    return lines


# The setup cell's test is `"google.colab" in sys.modules`: with COURSEKIT_COLAB=1 a .pth line in the
# Colab-stack venv (never the course's venv) puts a stand-in module there at every start, the notebook
# kernels' included; the setup cell then installs what is missing, from the wheels the target built.
PRETEND = ('import os, sys, types; os.environ.get("COURSEKIT_COLAB") == "1" and '
           'sys.modules.setdefault("google.colab", types.ModuleType("google.colab"))\n')


def pretend() -> str:
    import sysconfig

    if sys.prefix == sys.base_prefix:
        raise SystemExit("colab-check: `pretend` writes into a venv only; run it with the Colab-stack venv's python")
    path = f"{sysconfig.get_paths()['purelib']}/coursekit_pretend_colab.pth"
    with open(path, "w") as f:
        f.write(PRETEND)
    return path


def missing() -> list[str]:
    out = []
    for dist, version in deferred().items():
        try:
            found = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found != version:
            out.append(f"{dist}=={version} (found {found})")
    return out


def main(argv: list[str]) -> int:
    what = argv[0] if argv else ""
    if what == "requirements":
        print("\n".join(requirements()))
    elif what == "constraints":
        print("\n".join(constraints()))
    elif what == "deferred":
        print("\n".join(f"{d}=={v}" for d, v in deferred().items()))
    elif what == "python":
        print(stack()["python"])
    elif what == "pretend":
        print(f"colab-check: COURSEKIT_COLAB=1 makes this venv look like Colab ({pretend()})")
    elif what == "installed":
        if missing():
            print("colab-check: the setup cell's Colab path did not install " + ", ".join(missing()))
            return 1
        print("colab-check: the setup cell installed " + ", ".join(sorted(deferred())))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
