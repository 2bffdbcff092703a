"""Course data the instructor publishes once for Colab: `make publish-data`.

A file listed in course.toml under `[data.<name>]` (file, release_tag, url, sha256) is uploaded as
an asset of a GitHub release of the course repository; the notebook that needs it downloads it
from `url` with pooch into `COURSE_DATA_DIR/<file>` and refuses it unless its SHA-256 is `sha256`.
This module only reads the staged copy and prints its checksum and the exact upload step: the
upload itself is the instructor's (it needs their GitHub credentials).
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import REPO
from .config import load_course


@dataclass(frozen=True)
class PublishedFile:
    name: str
    file: str            # path under COURSE_DATA_DIR
    release_tag: str     # GitHub release holding the file as an asset
    url: str             # where the notebooks download it
    sha256: str          # checksum of the published file

    @property
    def asset(self) -> str:
        return Path(self.file).name


def published_files(path: Path = REPO / "course.toml") -> dict[str, PublishedFile]:
    """{name: PublishedFile} from course.toml's [data.<name>] tables."""
    tables = tomllib.loads(path.read_text()).get("data", {})
    return {name: PublishedFile(name, t["file"], t["release_tag"], t["url"], t["sha256"].lower())
            for name, t in tables.items()}


def data_root() -> Path:
    """COURSE_DATA_DIR, as the notebooks' setup cell resolves it."""
    return Path(os.environ.get("COURSE_DATA_DIR", Path.home() / "course_data")).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_url(spec: PublishedFile, github_repo: str) -> str:
    """The download URL of `spec`'s asset in the course repository's release."""
    return f"https://github.com/{github_repo}/releases/download/{spec.release_tag}/{spec.asset}"


def publish_instructions(names: list[str] | None = None, root: Path | None = None) -> tuple[str, bool]:
    """(text to print, ok): each file's checksum and the exact upload step; not ok when a file is
    missing or does not match course.toml (the text then says what to change)."""
    course = load_course()
    root = root or data_root()
    files = published_files()
    lines, ok = [], True
    for name in names or list(files):
        spec = files[name]
        path = root / spec.file
        lines.append(f"== {name}: {spec.file}")
        if not path.is_file():
            lines.append(f"   not staged: {path} does not exist (set COURSE_DATA_DIR to the folder that has it)")
            ok = False
            continue
        digest = sha256_of(path)
        lines.append(f"   file    {path} ({path.stat().st_size:,} bytes)")
        lines.append(f"   sha256  {digest}")
        url = expected_url(spec, course.github_repo)
        if digest != spec.sha256:
            ok = False
            lines.append(f"   course.toml [data.{name}] has sha256 {spec.sha256}: this is another file.")
            lines.append("   If it is the new version, publish it under a new release_tag, then set sha256 (and")
            lines.append("   release_tag and url) in course.toml and in the notebook's loader cell, and run make release.")
        if spec.url != url:
            ok = False
            lines.append(f"   course.toml [data.{name}] url is {spec.url},")
            lines.append(f"   but github_repo and release_tag give {url}: set url (course.toml and notebook) to it.")
        lines.append("   Upload it once, as an asset of a release of the course repository (GitHub CLI, logged in):")
        lines.append(f"     gh release create {spec.release_tag} {path} --repo {course.github_repo} "
                     f"--title 'Course data: {spec.asset}' --notes 'sha256 {digest}'")
        lines.append(f"   (release already there: gh release upload {spec.release_tag} {path} "
                     f"--repo {course.github_repo} --clobber;")
        lines.append(f"    in a browser: https://github.com/{course.github_repo}/releases/new?tag={spec.release_tag},"
                     " attach the file, publish.)")
        lines.append(f"   The notebooks then download {url}")
        lines.append(f"   Check: curl -sL {url} | sha256sum   (must print {digest})")
    return "\n".join(lines), ok
