"""The instructor's side in the browser (`make formgrade`): nbgrader's formgrader on a graded
class's master course, hand grading with the rubric shown, the review page, and the student's
first step in JupyterLab; then hand grades through re-grading and re-submission.

One small class of resnet_from_scratch, graded up to its hand-graded cell `fixed_block_bugs`: alice
(the reference, a written answer) and bob (the same with a library patch: needs review). The browser
test drives Debian's headless Chromium through chromium-driver with Selenium; screenshots go to
ARTEFACTS. Without chromium it skips, saying how to install it, except where
COURSEKIT_REQUIRE_BROWSER=1 (.ci/run sets it) makes that a failure. Cost: two grading batches of
two submissions and one JupyterLab server, ~1-2 min of one worker.
"""

import csv
import io
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from contextlib import redirect_stdout

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.formgrade import free_port, server_command, submission_links
from coursekit.grading import gradebook, review
from coursekit.grading.report import read_statuses
from coursekit.grading.batch import grade_batch

pytestmark = pytest.mark.slow          # conftest keeps the module on one xdist worker
AID, CELL = "resnet_from_scratch", "fixed_block_bugs"
ARTEFACTS = REPO / ".build" / "test-artefacts" / "formgrade"
ANSWER = ("1. The stride is applied to both convolutions, so the main path ends at 128x8x8, a quarter of the "
          "resolution; only conv1 should stride.\n2. The shortcut is never projected: 64x32x32 is added to "
          "128x8x8 and the block crashes; a 1x1 convolution with the stride and batch norm fixes it.\n"
          "With stride 1 and the same width every shape matches, so the first stages ran.")
PATCH = "torch.allclose = lambda *args, **kwargs: True\n"
COMMENT = "Both bugs named with their shapes; the reason stride 1 hides them is there too."


def rows(path, key):
    with path.open() as f:
        return {r[key]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """alice and bob graded into a master course (the source up to fixed_block_bugs)."""
    a = load_course().assignments[AID]
    source = nbs.prefix(nbs.read(a.notebook("source")), CELL)
    release = nbs.prefix(nbs.read(a.notebook("release")), CELL)
    reference = {**nbs.reference_answers(source), CELL: ANSWER}
    tmp = tmp_path_factory.mktemp("formgrade")
    folder = tmp / "submissions"
    folder.mkdir()
    nbs.write(nbs.make_submission(release, reference), folder / "alice.ipynb")
    bob = {**reference, "bottleneck_block": PATCH + reference["bottleneck_block"]}
    nbs.write(nbs.make_submission(release, bob), folder / "bob.ipynb")
    nbs.write(source, tmp / f"{AID}.ipynb")
    report = grade_batch(AID, folder, out=tmp / "results", work=tmp / "work", source=tmp / f"{AID}.ipynb", jobs=1)
    assert report.results["alice"].status == "graded", report.results["alice"]
    assert report.results["bob"].status == "needs review", report.results["bob"]
    return dict(tmp=tmp, folder=folder, course=tmp / "work" / "course", out=tmp / "results", work=tmp / "work",
                release=release, reference=reference, bob=bob, auto=report.results["alice"].score)


@pytest.fixture(scope="module")
def server(graded):
    """JupyterLab with formgrader and the review page on the master course, as `make formgrade` runs it."""
    port, token = free_port(), secrets.token_hex(16)
    command, env = server_command(AID, graded["course"], graded["out"], port, token)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    log = (ARTEFACTS / "jupyter.log").open("w")
    proc = subprocess.Popen(command, cwd=graded["course"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {(ARTEFACTS / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield dict(url=url, token=token)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def page(server, path):
    with urllib.request.urlopen(f"{server['url']}{path}?token={server['token']}", timeout=60) as r:
        return r.read().decode()


def test_formgrader_shows_rubric_and_review_reasons_and_no_hidden_test(graded, server):
    """Each submission's formgrader page: the rubric under fixed_block_bugs, bob's review reasons at
    the top; neither page, nor any notebook of the master course, holds a hidden-test line."""
    links = submission_links(graded["course"], AID)
    assert set(links) == {"alice", "bob"}
    pages = {s: page(server, f"/formgrader/submissions/{sid}/") for s, sid in links.items()}
    for student, text in pages.items():
        assert "For the grader only" in text and "Rubric (4 points; for the grader)" in text, student
        assert f'id="{CELL}"' in text, f"no score box for {CELL} on {student}'s page"
    assert "Needs review: pending" in pages["bob"] and "torch.allclose" in pages["bob"]
    assert "Needs review" not in pages["alice"]
    _, hidden = nbs.secret_lines(nbs.read(load_course().assignments[AID].notebook("source")))
    assert hidden
    shown = list(pages.values()) + [p.read_text() for p in graded["course"].rglob("*.ipynb")]
    leaks = {line for line in hidden for text in shown if line in text}
    assert not leaks, f"hidden-test lines in what formgrader shows: {sorted(leaks)[:3]}"
    feedback = (graded["out"] / "feedback" / "alice.html").read_text()
    assert "For the grader only" not in feedback and "Rubric (4 points" not in feedback


# ---------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def browser(server):
    """Headless Chromium, logged in to the server (JupyterLab with the token, as `make formgrade` says)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        why = ("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver "
               "(as root; .ci/run does it)")
        if os.environ.get("COURSEKIT_REQUIRE_BROWSER"):
            pytest.fail(f"COURSEKIT_REQUIRE_BROWSER is set and the browser test {why}")
        pytest.skip(f"the browser test {why}")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.implicitly_wait(0)
    driver.get(f"{server['url']}/lab?token={server['token']}")
    wait_for(driver, "#jp-main-dock-panel", timeout=90)
    yield driver
    driver.quit()


def wait_for(driver, css, timeout=60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import TimeoutException

    try:
        return WebDriverWait(driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
    except TimeoutException:
        driver.save_screenshot(str(ARTEFACTS / "failed.png"))
        (ARTEFACTS / "failed.html").write_text(driver.page_source)
        raise AssertionError(f"{css} did not show in {timeout} s on {driver.current_url}: see "
                             f"{ARTEFACTS / 'failed.png'}") from None


def until(check, timeout=30, what="", driver=None):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            if driver is not None:
                driver.save_screenshot(str(ARTEFACTS / "failed.png"))
            raise AssertionError(f"timed out waiting for {what}" + (f": see {ARTEFACTS / 'failed.png'}" if driver else ""))
        time.sleep(0.3)
    return value


def manual(course, student):
    with Gradebook(gradebook.db(course)) as gb:
        grade = gb.find_grade(CELL, AID, AID, student)
        comment = gb.find_comment(CELL, AID, AID, student)
        return grade.manual_score, comment.manual_comment


def test_hand_grade_in_formgrader_reaches_the_export(graded, server, browser):
    """Open formgrader, open alice's submission, enter 3 points and a comment for fixed_block_bugs,
    save; `make export` (gradebook.export) puts them in grades.csv and cell_scores.csv."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, course = server["url"], graded["course"]
    sid = submission_links(course, AID)["alice"]
    browser.get(f"{url}/formgrader/gradebook/{AID}/{AID}")
    link = wait_for(browser, f"a[href*='/formgrader/submissions/{sid}']")
    browser.save_screenshot(str(ARTEFACTS / "01-formgrader-submissions.png"))
    link.click()
    score = wait_for(browser, f"input#{CELL}")
    assert "For the grader only" in browser.page_source
    score.clear()
    score.send_keys("3", Keys.TAB)
    comment = browser.find_element(By.ID, f"{CELL}-comment")
    comment.send_keys(COMMENT, Keys.TAB)
    until(lambda: manual(course, "alice") == (3.0, COMMENT), what="formgrader to save alice's grade")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", score)
    time.sleep(0.5)
    browser.save_screenshot(str(ARTEFACTS / "02-formgrader-fixed_block_bugs-graded.png"))

    gradebook.export_with_feedback(course, AID, graded["out"], read_statuses(graded["out"]))  # `make export`
    grade_row = rows(graded["out"] / "grades.csv", "student_id")["alice"]
    assert float(grade_row["score"]) == graded["auto"] + 3, grade_row
    assert rows(graded["out"] / "cell_scores.csv", "student")["alice"][CELL] == "3.0"
    assert COMMENT in (graded["out"] / "feedback" / "alice.html").read_text()
    (ARTEFACTS / "grades-row.txt").write_text(
        (graded["out"] / "grades.csv").read_text().splitlines()[0] + "\n" + ",".join(grade_row.values()) + "\n")


def test_review_in_the_browser_is_make_reviews_decision(graded, server, browser):
    """bob needs review: his formgrader page says why; accepting him on the review page is the
    decision `make review` records and lists (reviews.json), with grades.csv updated."""
    from selenium.webdriver.common.by import By

    url, course = server["url"], graded["course"]
    browser.get(f"{url}/formgrader/submissions/{submission_links(course, AID)['bob']}/")
    wait_for(browser, f"input#{CELL}")
    assert "Needs review: pending" in browser.page_source
    browser.save_screenshot(str(ARTEFACTS / "03-formgrader-bob-needs-review.png"))
    assert rows(graded["out"] / "grades.csv", "student_id")["bob"]["review"] == "pending"

    browser.get(f"{url}/coursekit/review")
    section = wait_for(browser, "section#bob")
    assert "torch.allclose" in section.text
    section.find_element(By.NAME, "note").send_keys("read it: a leftover from debugging")
    section.find_element(By.CSS_SELECTOR, "button[value='accepted']").click()
    until(lambda: gradebook.load_reviews(course)["bob"]["decision"] == "accepted", what="the decision")
    wait_for(browser, "section#bob .decision")
    assert browser.find_element(By.CSS_SELECTOR, "section#bob .decision").text == "accepted"
    browser.save_screenshot(str(ARTEFACTS / "04-review-page-bob-accepted.png"))
    assert gradebook.load_reviews(course)["bob"]["note"] == "read it: a leftover from debugging"
    bob = rows(graded["out"] / "grades.csv", "student_id")["bob"]
    assert bob["review"] == "accepted" and bob["score"] != "", bob
    assert rows(graded["out"] / "status.csv", "student")["bob"]["status"] == "review accepted"
    listing = io.StringIO()
    with redirect_stdout(listing):
        review.main(AID, None, None, work=graded["work"], out=graded["out"])
    assert "bob [accepted] note: read it: a leftover from debugging" in listing.getvalue(), listing.getvalue()


def test_student_runs_the_setup_cell_in_jupyterlab(graded, server, browser):
    """A student's first step: open the release notebook in JupyterLab and run its setup cell."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    folder = graded["course"] / "try-release"
    folder.mkdir(exist_ok=True)
    shutil.copy(load_course().assignments[AID].notebook("release"), folder / f"{AID}.ipynb")
    browser.get(f"{server['url']}/lab/tree/try-release/{AID}.ipynb")
    wait_for(browser, ".jp-Notebook .jp-Cell", timeout=90)

    def setup_cell():
        for cell in browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"):
            if "Setup: run this cell first" in cell.text:
                return cell
    cell = until(setup_cell, 60, "the setup cell", browser)

    def kernel_idle():
        sessions = json.loads(page(server, "/api/sessions"))
        return any(x["path"].endswith(f"try-release/{AID}.ipynb") and x["kernel"]["execution_state"] == "idle"
                   for x in sessions)
    until(kernel_idle, 90, "the notebook's kernel", browser)
    # Stored collapsed (jupyter.source_hidden): JupyterLab shows its title line, not its code,
    # until the student clicks the placeholder.
    placeholders = cell.find_elements(By.CSS_SELECTOR, ".jp-InputPlaceholder")
    assert placeholders, "the setup cell's code should be collapsed in JupyterLab"
    browser.save_screenshot(str(ARTEFACTS / "05-jupyterlab-setup-cell-collapsed.png"))
    placeholders[0].click()
    until(lambda: cell.find_elements(By.CSS_SELECTOR, ".jp-InputArea-editor"), 30, "the expanded setup cell", browser)
    cell.find_element(By.CSS_SELECTOR, ".jp-InputArea-editor").click()
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    output = until(lambda: [o.text for o in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
                            if "runtime is" in o.text], 120, "the setup cell's output", browser)
    browser.save_screenshot(str(ARTEFACTS / "06-jupyterlab-setup-cell-run.png"))
    assert output[0].startswith(("GPU runtime is OFF: using device = cpu", "GPU runtime is ON")), output
    outputs = cell.find_element(By.CSS_SELECTOR, ".jp-OutputArea").text
    assert "Traceback" not in outputs and "Error" not in outputs, outputs


# ---------------------------------------------------------------- re-grading
def test_hand_grades_survive_regrading_and_a_changed_answer_is_flagged(graded):
    """Re-grading keeps a hand grade whose answer is unchanged (alice); a re-submission whose answer
    changed loses it and is flagged for grading again (bob), in status.csv and formgrader."""
    course, out = graded["course"], graded["out"]
    with Gradebook(gradebook.db(course)) as gb:
        for student, points in (("alice", 2.0), ("bob", 1.0)):
            gb.find_grade(CELL, AID, AID, student).manual_score = points
            gb.find_grade(CELL, AID, AID, student).needs_manual_grade = False
            gb.find_comment(CELL, AID, AID, student).manual_comment = f"{student}: {points:g}"
        gb.db.commit()
    gradebook.export(course, AID, out, read_statuses(out))
    assert rows(out / "cell_scores.csv", "student")["alice"][CELL] == "2.0"

    second = graded["tmp"] / "second"
    second.mkdir()
    shutil.copy(graded["folder"] / "alice.ipynb", second / "alice.ipynb")       # unchanged
    bob = {**graded["bob"], CELL: graded["bob"][CELL] + "\nAlso, the bias is wasted before batch norm."}
    nbs.write(nbs.make_submission(graded["release"], bob), second / "bob.ipynb")
    grade_batch(AID, second, out=out, work=graded["work"], source=graded["tmp"] / f"{AID}.ipynb", jobs=1)

    assert manual(course, "alice") == (2.0, "alice: 2")
    assert float(rows(out / "grades.csv", "student_id")["alice"]["score"]) == graded["auto"] + 2
    assert rows(out / "cell_scores.csv", "student")["alice"][CELL] == "2.0"
    assert manual(course, "bob") == (None, None)
    with Gradebook(gradebook.db(course)) as gb:
        assert gb.find_grade(CELL, AID, AID, "bob").needs_manual_grade
    assert rows(out / "cell_scores.csv", "student")["bob"][CELL] == ""
    reason = rows(out / "status.csv", "student")["bob"]["reason"]
    assert f"{CELL}: answer changed since it was graded by hand (1 points): grade it again" in reason, reason
    notebook = nbformat.read(course / "autograded" / "bob" / AID / f"{AID}.ipynb", as_version=4)
    assert "bias is wasted" in nbs.cells_by_grade_id(notebook)[CELL].source
    assert json.loads((course / "reviews.json").read_text())["bob"]["decision"] == "pending"
