"""The Python versions this course's environment installs on, checked before anything is installed.

    python coursekit/pyversion.py [FIX]    prints nothing and exits 0 on a supported interpreter;
                                           otherwise prints ONE line (what works, how to get it,
                                           then FIX) and exits 1.

Runs on any Python (no imports beyond sys and platform, no f-strings), so that `make venv` and the
Gradescope setup.sh can ask an interpreter that is too old. The range: Debian 12's python3 (3.11.2)
through Colab's 3.13; the lock (requirements.txt) is compiled for exactly this range (make lock).
Pre-releases (a, b, rc: e.g. Ubuntu 22.04's python3.11 package, 3.11.0rc1) are refused.
"""

import platform
import sys

MINIMUM = (3, 11, 2)          # Debian 12's /usr/bin/python3
MAXIMUM_MINOR = (3, 13)       # Colab's; Ubuntu 24.04 ships 3.12
RANGE = "CPython 3.11.2 to 3.13.x, a final release"
HOW = ("Debian 12's python3, Ubuntu 24.04's python3.12, a python.org installer, "
       "`uv python install 3.13` or `pyenv install 3.13`")
DEFAULT_FIX = "make venv PYTHON=python3.12"


def problem(version_info=None, implementation=None):
    """None when the interpreter is supported, else the reason (without the advice)."""
    v = tuple(version_info if version_info is not None else sys.version_info)
    impl = implementation if implementation is not None else platform.python_implementation()
    text = "{0}.{1}.{2}".format(*v[:3])
    if len(v) > 3 and v[3] != "final":
        text += "{0}{1}".format({"alpha": "a", "beta": "b", "candidate": "rc"}.get(v[3], v[3]),
                                v[4] if len(v) > 4 else "")
    if impl != "CPython":
        return "{0} {1} is not CPython".format(impl, text)
    if len(v) > 3 and v[3] != "final":
        return "Python {0} is a pre-release".format(text)
    if tuple(v[:3]) < MINIMUM or tuple(v[:2]) > MAXIMUM_MINOR:
        return "Python {0} is outside the supported range".format(text)
    return None


def message(reason, executable, fix=DEFAULT_FIX):
    return ("{0} ({1}): this course needs {2}; get one ({3}), then run: {4}"
            .format(reason, executable, RANGE, HOW, fix))


def main(argv):
    reason = problem()
    if reason is None:
        return 0
    print(message(reason, sys.executable, argv[1] if len(argv) > 1 else DEFAULT_FIX))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
