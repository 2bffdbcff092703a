"""The pinned environment is fully pinned, consistent, and the nbgrader config is real."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

from coursekit import REPO, pyversion
from coursekit.config import normalise, pinned_versions


def direct_pins():
    pins = {}
    for line in (REPO / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(===?)([0-9][^\s]*)", line)
            assert m, f"requirements.in: '{line}' is not an exact pin"
            pins[normalise(m.group(1))] = (m.group(2), m.group(3))
    return pins


def test_direct_pins_are_in_the_lock():
    lock = pinned_versions()
    for name, (_, version) in direct_pins().items():
        assert lock.get(name) == version, f"{name}=={version} in requirements.in, {lock.get(name)} in requirements.txt"


def test_torch_pair_is_the_importable_one():
    pins = direct_pins()
    assert pins["torch"] == ("===", "2.13.0"), "torch===2.13.0 (three '='): '==' takes a local CPU wheel"
    assert pins["torchvision"] == ("==", "0.28.0")
    assert "torch===2.13.0" in (REPO / "requirements.txt").read_text().splitlines()


def test_every_locked_line_is_exact():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+===?[^\s;]+( ; [^;]+)?", line), f"not an exact pin: {line}"


def test_one_lock_for_the_whole_python_range():
    """requirements.txt is uv's universal lock from 3.11.2 on: a package whose pin must differ by
    Python version gets one line per version range (soupsieve 4.1.2 needs 3.11.5), each marker-bound."""
    text = (REPO / "requirements.txt").read_text()
    assert "--python-version 3.11.2" in (REPO / "Makefile").read_text()
    assert pyversion.MINIMUM == (3, 11, 2)
    assert "soupsieve==2.10 ; python_full_version < '3.11.5'" in text.splitlines()
    names = [normalise(re.match(r"[^=;\s]+", line).group()) for line in text.splitlines() if line and line[0] != "#"]
    for name in {n for n in names if names.count(n) > 1}:
        lines = [line for line in text.splitlines() if normalise(line.split("=")[0]) == name]
        assert all("python_full_version" in line for line in lines), f"{name}: two pins not told apart by Python version: {lines}"
    # what the notebooks' Colab setup cell installs has one pin for every Python
    from coursekit.config import load_course
    for assignment in load_course().assignments.values():
        for dist in assignment.colab_packages:
            assert names.count(normalise(dist)) == 1, f"{dist} (colab_packages) has more than one pin"


def range_spec():
    low = ".".join(map(str, pyversion.MINIMUM))
    high = f"{pyversion.MAXIMUM_MINOR[0]}.{pyversion.MAXIMUM_MINOR[1] + 1}"
    return f">={low},<{high}"


def test_range_is_stated_where_installers_read_it():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == range_spec(), "pyproject's requires-python and coursekit/pyversion.py differ"
    assert pyversion.problem() is None, f"this test runs on an unsupported interpreter: {pyversion.problem()}"


def test_conda_environment_is_the_same_environment():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert python == ["python" + range_spec()], "environment.yml's python and coursekit/pyversion.py differ"
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-r requirements.txt"], "conda's pip section must install the same lock file"


@pytest.mark.parametrize("version, reason", [
    ((3, 10, 13, "final", 0), "Python 3.10.13 is outside the supported range"),
    ((3, 11, 1, "final", 0), "Python 3.11.1 is outside the supported range"),
    ((3, 11, 0, "candidate", 1), "Python 3.11.0rc1 is a pre-release"),      # Ubuntu 22.04's python3.11
    ((3, 13, 0, "beta", 4), "Python 3.13.0b4 is a pre-release"),
    ((3, 14, 0, "final", 0), "Python 3.14.0 is outside the supported range"),
    ((3, 11, 2, "final", 0), None),                                          # Debian 12's python3
    ((3, 12, 3, "final", 0), None),                                          # Ubuntu 24.04's
    ((3, 13, 11, "final", 0), None),                                         # Colab's minor
])
def test_python_range_check(version, reason):
    assert pyversion.problem(version, "CPython") == reason
    assert pyversion.problem(version, "PyPy") is not None


def test_python_check_runs_without_dependencies_and_says_what_to_do():
    script = str(REPO / "coursekit" / "pyversion.py")
    ok = subprocess.run([sys.executable, "-I", script], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    line = pyversion.message("Python 3.10.13 is outside the supported range", "/usr/bin/python3.10")
    assert "\n" not in line and "3.11.2 to 3.13" in line and "make venv PYTHON=python3.12" in line


def make_venv(tmp_path, python):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # as a user types it
    return subprocess.run(["make", "-n", "venv", f"VENV={tmp_path / 'venv'}", f"PYTHON={python}"], cwd=REPO,
                          capture_output=True, text=True, env=env)


def test_make_venv_refuses_an_old_python_in_one_line(tmp_path):
    old = next((p for p in sorted(Path("/root/.pyenv/versions").glob("3.10.*/bin/python")) if p.exists()), None)
    if old is None:
        pytest.skip("no Python 3.10 here (pyenv's 3.10 on these machines)")
    out = make_venv(tmp_path, old)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) == 1 and "Python 3.10" in lines[0] and "make venv PYTHON=python3.12" in lines[0], lines
    assert not (tmp_path / "venv").exists()


def test_make_venv_names_a_missing_python(tmp_path):
    out = make_venv(tmp_path, "python3.99-missing")
    assert out.returncode == 2
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"Makefile:\d+: \*\*\* python3\.99-missing not found: this course needs CPython 3\.11\.2 to 3\.13\.x "
        r"\(README, Environment\); run: make venv PYTHON=python3\.12\.  Stop\.", lines[0]), lines


def test_make_venv_accepts_this_python(tmp_path):
    out = make_venv(tmp_path, sys.executable)
    assert out.returncode == 0 and "***" not in out.stderr, out.stderr
    assert "-m venv" in out.stdout


def test_nbgrader_config_sets_only_real_options():
    from nbgrader.apps import NbGraderApp

    classes = {cls.__name__: cls for cls in NbGraderApp().all_configurable_classes()}
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    for section, values in config.items():
        assert section in classes, f"nbgrader has no configurable class {section}"
        traits = classes[section].class_traits(config=True)
        for key in values:
            assert key in traits, f"{section}.{key} is not an nbgrader option"


def test_iri_grammars_are_built_on_first_use_only():
    """coursekit defers rfc3987_syntax (2–3 s of Lark grammars at import, in every grading process
    that imports nbformat); jsonschema's "iri" checks still run its real parser."""
    import subprocess

    probe = ("import coursekit, nbformat, jsonschema, sys\n"
             "print(getattr(sys.modules['rfc3987_syntax'], '__file__', None))\n"
             "check = jsonschema.FormatChecker()\n"
             "print(check.conforms('https://example.org/r\u00e9sum\u00e9', 'iri'), check.conforms('not an iri', 'iri'),"
             " check.conforms('../a b', 'iri-reference'), check.conforms('../b', 'iri-reference'))\n"
             "print(type(sys.modules['rfc3987_syntax'].syntax_parser).__name__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "None", "nbformat's import built the IRI grammars (coursekit must be imported first)"
    assert out[1] == "True False False True"
    assert out[2] == "Lark"
