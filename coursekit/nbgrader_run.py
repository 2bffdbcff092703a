"""The one way coursekit runs nbgrader, for building and for grading.

Two forms, both checked: `cli()` runs an nbgrader command in a course folder (its
`nbgrader_config.py` applies) and `app()` runs an nbgrader application in this process (no
interpreter start-up per call: the grader's workers autograde hundreds of notebooks this way).
A failing call raises `GraderError`, which the grader reports as its own failure ("grader error",
non-zero exit), never as a fault of the student whose notebook was being processed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class GraderError(RuntimeError):
    """nbgrader (or coursekit around it) failed: not the student's fault."""


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS...` of this environment in `cwd`; raise GraderError on a non-zero exit."""
    bindir = Path(sys.executable).parent
    run_env = {**os.environ, **(env or {})}
    run_env["PATH"] = f"{bindir}{os.pathsep}{run_env.get('PATH', '')}"  # nbgrader runs alembic
    proc = subprocess.run([str(bindir / "nbgrader"), *args], cwd=cwd, env=run_env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise GraderError(f"nbgrader {args[0]} failed (exit {proc.returncode}) in {cwd}:\n"
                          f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def course_config(root: Path, **overrides):
    """The traitlets config of the course folder `root` (its nbgrader_config.py), plus overrides
    given as {"Class.trait": value}."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (root / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config())
    for dotted, value in overrides.items():
        section, trait = dotted.split(".")
        config[section][trait] = value
    config.CourseDirectory.root = str(root)
    return config


def alembic_on_path() -> None:
    """nbgrader runs the `alembic` command of this environment when it makes a new gradebook."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def app(app_class, root: Path, config=None, check: bool = True, **coursedir_traits) -> dict:
    """Run an nbgrader application (a converter such as Autograde, or an export plugin app) in
    this process, with nbgrader's own `capture_log`. Returns {"success", "log", "error"}."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    alembic_on_path()
    config = config if config is not None else course_config(root)
    coursedir = CourseDirectory(config=config, root=str(root), **coursedir_traits)
    instance = app_class(coursedir=coursedir, config=config)
    result = capture_log(instance)
    if check and not result["success"]:
        raise GraderError(f"nbgrader {app_class.__name__} failed in {root}:\n"
                          f"{result.get('log', '')[-3000:]}\n{result.get('error', '')[-3000:]}")
    return result


def feedback(root: Path, assignment_id: str, student_id: str = "*") -> None:
    """nbgrader generate_feedback in this process (its feedback template, as nbgrader's API sets it)."""
    from nbgrader.converters import GenerateFeedback

    settings = course_config(root, **{"BaseConverter.force": True, "HTMLExporter.template_name": "feedback"})
    app(GenerateFeedback, root, settings, assignment_id=assignment_id, student_id=student_id)
