"""`make formgrade`: nbgrader's formgrader on an assignment's master course, for the instructor.

JupyterLab runs in `autograder/work/<id>/course` (the master course `make grade` fills: every
graded submission, the gradebook), on 127.0.0.1 with a random token. Two additions, both loaded
only by this server (a JSON config file given with `--config`, never the course's
nbgrader_config.py, so feedback and grading are unchanged):

* `RubricForGrader`, a preprocessor of formgrader's page exporter: under each answer cell graded
  by hand it shows the rubric and model answer (that cell's solution in the course's source
  notebook: the kernel's source, which holds no hidden test), and at the top of a submission
  that needs review its reasons, its decision and a link to the review page.
* The review page, `/coursekit/review` (a Jupyter server extension, token-authenticated, XSRF-
  checked): each submission that needs review with its reasons; accepting or rejecting one
  there calls what `make review` calls (`review.main`): one decision, in reviews.json, whichever
  way it was made, with grades.csv, cell_scores.csv, status.csv and the feedback updated.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Unicode
from traitlets.config import Configurable

from . import REPO
from . import notebooks as nbs
from .grading import layout

RUBRIC_PREFIX = "coursekit-rubric-"
REVIEW_CELL = "coursekit-review"


def paths(aid: str) -> tuple[Path, Path]:
    """(master course, results folder) of an assignment, as `make grade` lays them out."""
    return layout.master_course(layout.work_folder(aid)), layout.results_folder(aid)


class RubricForGrader(Preprocessor):
    """Formgrader's page of a submission: the rubric under each cell graded by hand, and a needs-review
    submission's reasons at the top. Only on formgrader's pages (their resources carry a
    submission_id): a notebook exported any other way, feedback included, is left as it is."""

    course = Unicode("", help="the master course folder (its source/ and reviews.json)").tag(config=True)

    def preprocess(self, nb, resources):
        if not self.course or "submission_id" not in resources:
            return nb, resources
        course = Path(self.course)
        aid, nb_id = resources["assignment_id"], resources["notebook_id"]
        source = layout.folder(course, "source", aid) / f"{nb_id}.ipynb"
        solutions = {}
        if source.exists():
            solutions = {nbs.grade_id(c): c.source for c in nbformat.read(source, as_version=4).cells
                         if nbs.is_solution(c) and nbs.nbgrader(c).get("grade")}
        cells = []
        for cell in nb.cells:
            if cell.get("id", "").startswith((RUBRIC_PREFIX, REVIEW_CELL)):
                continue
            cells.append(cell)
            gid = nbs.grade_id(cell)
            if gid in solutions:
                rubric = nbs.without_markers(solutions[gid])
                note = nbformat.v4.new_markdown_cell(
                    f"<div class='alert alert-info'><b>For the grader only: the model answer and rubric of "
                    f"<code>{gid}</code></b> (from the source notebook; never shown to students)</div>\n\n{rubric}")
                note.id = RUBRIC_PREFIX + gid
                cells.append(note)
        review = load_reviews(course).get(resources.get("student", ""))
        if review:
            reasons = "\n".join(f"- {html.escape(r)}" for r in review["reasons"])
            note_text = f" Note: {html.escape(review['note'])}" if review.get("note") else ""
            banner = nbformat.v4.new_markdown_cell(
                f"<div class='alert alert-warning'><b>Needs review: {html.escape(review['decision'])}.</b>"
                f"{note_text} Decide on the <a href='{resources.get('base_url', '')}/coursekit/review"
                f"#{html.escape(resources['student'])}'>review page</a> (or <code>make review</code>: the "
                f"same decision).</div>\n\n{reasons}")
            banner.id = REVIEW_CELL
            cells.insert(0, banner)
        nb.cells = cells
        return nb, resources


def load_reviews(course: Path) -> dict:
    path = course / "reviews.json"
    return json.loads(path.read_text()) if path.exists() else {}


class ReviewPage(Configurable):
    """Where the review page finds the assignment (set by `launch`)."""

    assignment = Unicode("", help="assignment id").tag(config=True)
    course = Unicode("", help="its master course folder").tag(config=True)
    out = Unicode("", help="its results folder").tag(config=True)


def _handlers(settings: ReviewPage):
    from jupyter_server.base.handlers import JupyterHandler
    from tornado import web

    from .grading import gradebook, review
    from .grading.results import Review

    class Handler(JupyterHandler):
        @web.authenticated
        def get(self):
            course = Path(settings.course)
            reviews = gradebook.load_reviews(course)
            links = submission_links(course, settings.assignment)
            rows = []
            for student, r in sorted(reviews.items()):
                reasons = "".join(f"<li>{html.escape(x)}</li>" for x in r["reasons"])
                link = (f" <a href='{self.base_url}formgrader/submissions/{links[student]}/'>open in "
                        f"formgrader</a>" if student in links else "")
                rows.append(
                    f"<section id='{html.escape(student)}'><h2>{html.escape(student)}: "
                    f"<span class='decision'>{html.escape(r['decision'])}</span></h2>{link}"
                    f"<ul>{reasons}</ul>"
                    + (f"<p>Note: {html.escape(r['note'])}</p>" if r.get("note") else "")
                    + f"<form method='post'><input type='hidden' name='_xsrf' value='{self.xsrf_token.decode()}'>"
                    f"<input type='hidden' name='student' value='{html.escape(student)}'>"
                    f"<label>Note <input name='note' size='60'></label> "
                    f"<button name='decision' value='{Review.ACCEPTED}'>Accept (the verified points count)</button> "
                    f"<button name='decision' value='{Review.REJECTED}'>Reject (scores 0)</button></form></section>")
            body = "".join(rows) or "<p>No submission needs review.</p>"
            self.finish(f"<!doctype html><html><head><meta charset='utf-8'><title>Reviews: "
                        f"{html.escape(settings.assignment)}</title></head><body><h1>Submissions that need "
                        f"review: {html.escape(settings.assignment)}</h1><p>The same decisions as <code>make "
                        f"review ASSIGNMENT={html.escape(settings.assignment)}</code> (reviews.json); deciding "
                        f"here updates grades.csv, cell_scores.csv, status.csv and the student's feedback.</p>"
                        f"{body}</body></html>")

        @web.authenticated
        def post(self):
            student, decision = self.get_body_argument("student"), self.get_body_argument("decision")
            if decision not in (Review.ACCEPTED, Review.REJECTED):
                raise web.HTTPError(400, "decision must be accepted or rejected")
            code = review.main(settings.assignment, student, decision, self.get_body_argument("note", ""),
                               out=Path(settings.out), work=Path(settings.course).parent)
            if code:
                raise web.HTTPError(404, f"{student} has no submission that needs review")
            self.redirect(f"{self.base_url}coursekit/review#{student}")

    return [("/coursekit/review", Handler)]


def submission_links(course: Path, aid: str) -> dict[str, str]:
    """{student: formgrader's submission id} of the assignment's one notebook."""
    from nbgrader.api import Gradebook, MissingEntry

    from .grading.gradebook import db

    links = {}
    with Gradebook(db(course)) as gb:
        for student in gb.students:
            try:
                links[student.id] = gb.find_submission_notebook(aid, aid, student.id).id
            except MissingEntry:
                pass
    return links


def _jupyter_server_extension_points():
    return [{"module": "coursekit.formgrade"}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    settings = ReviewPage(config=serverapp.config)
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, path), handler)
                                            for path, handler in _handlers(settings)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(aid: str, course: Path, out: Path, port: int, token: str) -> tuple[list[str], dict]:
    """The JupyterLab command line and environment that serve formgrader on `course`."""
    course = course.resolve()             # nbgrader compares it with the server root: no symlinks
    config = course.parent / "formgrade" / "jupyter_formgrade_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"coursekit.formgrade": True}},
        "HTMLExporter": {"preprocessors": ["coursekit.formgrade.RubricForGrader"]},
        "RubricForGrader": {"course": str(course)},
        "ReviewPage": {"assignment": aid, "course": str(course), "out": str(out)},
    }, indent=1))
    bindir = Path(sys.executable).parent
    command = [str(bindir / "jupyter"), "lab", "--no-browser", f"--config={config}",
               f"--ServerApp.root_dir={course}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    if os.geteuid() == 0:                  # CI containers run as root; jupyter refuses without this
        command.append("--allow-root")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return command, env


def launch(aid: str, port: int = 0) -> int:
    """Serve formgrader on the assignment's master course until interrupted (Ctrl-C)."""
    course, out = paths(aid)
    if not (course / "gradebook.db").exists():
        print(f"no graded batch of {aid} yet: run `make grade ASSIGNMENT={aid}` first")
        return 2
    token = secrets.token_hex(24)
    port = port or free_port()
    command, env = server_command(aid, course, out, port, token)
    url = f"http://127.0.0.1:{port}"
    print(f"formgrader for {aid}, localhost only. The token is the password: keep it to yourself.\n"
          f"  1. log in (JupyterLab):  {url}/lab?token={token}\n"
          f"  2. hand grading:         {url}/formgrader/gradebook/{aid}/{aid}\n"
          f"     (or JupyterLab's Nbgrader menu > Formgrader > Manual Grading)\n"
          f"  3. needs review:         {url}/coursekit/review\n"
          f"Then `make export ASSIGNMENT={aid}` writes the hand grades into {out}/grades.csv and "
          f"cell_scores.csv. Stop with Ctrl-C.", flush=True)
    try:
        return subprocess.run(command, cwd=course, env=env).returncode
    except KeyboardInterrupt:
        return 0
