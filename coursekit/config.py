"""Course settings from course.toml and the pinned versions from requirements.txt."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from . import REPO


@dataclass(frozen=True)
class Assignment:
    """One assignment: nbgrader id = folder = notebook name."""

    id: str
    title: str
    colab_packages: tuple[str, ...]
    cell_timeout: int             # seconds per cell (building keys, grading)
    notebook_timeout: int         # seconds for a whole submission when grading
    memory_gb: float              # memory cap of a student's kernel
    max_upload_mb: int            # larger submissions are refused as malformed
    gradescope_visibility: dict = field(default_factory=dict)   # grade_id -> Gradescope visibility
    data: tuple[str, ...] = ()    # the data files its notebook reads, under COURSE_DATA_DIR
    release_after: tuple[str, ...] = ()   # assignments whose deadline this release follows

    def notebook(self, step: str, root: Path = REPO) -> Path:
        """Path of this assignment's notebook in `step` (source, release or solutions)."""
        return root / step / self.id / f"{self.id}.ipynb"


@dataclass(frozen=True)
class Course:
    id: str
    github_repo: str
    branch: str
    assignments: dict[str, Assignment]
    submission_filename: str      # regexp mapping LMS file names to student ids (zip_collect)
    gradescope_visibility: str = "after_due_date"   # default visibility of a graded cell's result

    def colab_url(self, assignment_id: str) -> str:
        """Colab link that opens the student (release) notebook from GitHub."""
        return (f"https://colab.research.google.com/github/{self.github_repo}/blob/"
                f"{self.branch}/release/{assignment_id}/{assignment_id}.ipynb")


@cache
def load_course(path: Path = REPO / "course.toml") -> Course:
    data = tomllib.loads(path.read_text())
    assignments = {
        aid: Assignment(aid, spec["title"], tuple(spec.get("colab_packages", ())),
                        int(spec.get("cell_timeout", 120)), int(spec.get("notebook_timeout", 900)),
                        float(spec.get("memory_gb", 4)), int(spec.get("max_upload_mb", 50)),
                        dict(spec.get("gradescope_visibility", {})), data_files(aid, spec.get("data", [])),
                        tuple(spec.get("release_after", ())))
        for aid, spec in data["assignments"].items()
    }
    order = list(assignments)
    for aid, assignment in assignments.items():
        for earlier in assignment.release_after:
            if earlier not in order[:order.index(aid)]:
                raise ValueError(f"course.toml [assignments.{aid}] release_after: {earlier!r} is not an "
                                 f"assignment listed before {aid!r}; name ids of earlier tables, e.g. "
                                 f"release_after = [\"{order[0]}\"]")
    course = data["course"]
    return Course(course["id"], course["github_repo"], course.get("branch", "main"), assignments,
                  data.get("grading", {}).get("submission_filename", DEFAULT_SUBMISSION_FILENAME),
                  data.get("gradescope", {}).get("visibility", "after_due_date"))


def data_files(aid: str, files: list[str]) -> tuple[str, ...]:
    """An assignment's `data` list: paths under COURSE_DATA_DIR such as "medmnist/pneumoniamnist.npz"."""
    for name in files:
        if not isinstance(name, str) or name.startswith("/") or {"..", ""} & set(name.split("/")):
            raise ValueError(f"course.toml [assignments.{aid}] data: {name!r} is not a path under "
                             f"COURSE_DATA_DIR; write it as in the notebook, e.g. \"medmnist/pneumoniamnist.npz\"")
    return tuple(files)


# ".../<student>_<notebook>.ipynb", e.g. jdoe_resnet_blocks.ipynb (matched against the whole path)
DEFAULT_SUBMISSION_FILENAME = r".*/(?P<student_id>[A-Za-z0-9.\-]+)_(?P<file_id>[^/]+)\.ipynb$"


@cache
def pinned_versions(path: Path = REPO / "requirements.txt") -> dict[str, str]:
    """{normalised distribution name: exact version} from the lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*===?\s*([^\s;#]+)", line)
        if m:
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    """PEP 503 name normalisation (Grad-CAM, grad_cam and grad-cam are one package)."""
    return re.sub(r"[-_.]+", "-", name).lower()
