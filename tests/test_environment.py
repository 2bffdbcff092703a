"""The pinned environment is fully pinned, consistent, and the nbgrader config is real."""

import re
import sys

import yaml
from traitlets.config.loader import PyFileConfigLoader

from coursekit import REPO
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
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+===?[^\s]+", line), f"not an exact pin: {line}"


def test_conda_environment_is_the_same_environment():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python=")]
    assert python == [f"python={sys.version_info.major}.{sys.version_info.minor}"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-r requirements.txt"], "conda's pip section must install the same lock file"


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
