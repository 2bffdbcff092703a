"""coursekit's FeedbackExporter makes the page nbconvert's HTMLExporter makes, without its slow pass."""

import copy
import re

import pytest
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter
from nbgrader.converters import GenerateFeedback
from traitlets.config import Config

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.nbgrader_ext import MISSING_ALT, FeedbackExporter, with_image_alt_text

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")   # new per page
CONFIG = Config({"HTMLExporter": {"template_name": "classic"}})   # the feedback template's base
# Answer keys: executed notebooks with figures (images without alt text) and HTML/JavaScript outputs.
KEYS = [load_course().assignments[aid].notebook("solutions")
        for aid in ("resnet_blocks", "unet_segmentation")]


def assert_same_page(ours, nb):
    theirs, _ = HTMLExporter(config=CONFIG).from_notebook_node(nb)
    assert ours.count(f'alt="{MISSING_ALT}"') == theirs.count(f'alt="{MISSING_ALT}"') > 0
    # HTMLExporter's page is ours after BeautifulSoup's re-serialisation, which changes nothing else
    assert UUID.sub("<id>", str(BeautifulSoup(ours, features="html.parser"))) == UUID.sub("<id>", theirs)


def test_feedback_template_is_the_classic_layout():
    """The pages above use nbconvert's classic template, which nbgrader's feedback template extends:
    were it to extend another (the `lab` one has `jp-` cells), the BeautifulSoup pass the exporter
    leaves out would also make those cells focusable, and the exporter would have to do so too."""
    template = FeedbackExporter(config=GenerateFeedback().config).template
    assert template.filename.endswith("feedback/index.html.j2")
    with open(template.filename) as f:
        assert re.match(r"{%-? extends 'nbconvert/templates/classic/index.html.j2'", f.read())


@pytest.mark.parametrize("path", KEYS, ids=[p.stem for p in KEYS])
def test_feedback_page_is_htmlexporters(path):
    nb = nbs.read(path)
    assert_same_page(FeedbackExporter(config=CONFIG).from_notebook_node(nb)[0], nb)


def test_highlighting_is_remembered_per_cell_source():
    """The next student's page, from the same exporter: the cell that differs is highlighted anew."""
    exporter = FeedbackExporter(config=CONFIG)
    first = nbs.read(KEYS[0])
    exporter.from_notebook_node(first)
    second = copy.deepcopy(first)
    cell = next(c for c in second.cells if c.cell_type == "code" and c.source.strip())
    cell.source = "answer = 42  # another student's code\n" + cell.source
    page, _ = exporter.from_notebook_node(second)
    assert "another student" in page
    assert_same_page(page, second)


def test_alt_text_goes_on_images_without_it():
    page = ('<p>a <img src="x.png"> b</p>\n<IMG\nsrc="y.png"/><img alt="kept" src="z.png">\n'
            '<script>var s = "<img src=q>";</script>\n<pre>&lt;img src="code"&gt;</pre>')
    html, missing = with_image_alt_text(page)
    assert missing == 2
    assert html == page.replace('<img src="x.png">', f'<img alt="{MISSING_ALT}" src="x.png">') \
                       .replace('<IMG\nsrc', f'<IMG alt="{MISSING_ALT}"\nsrc')
    assert with_image_alt_text(html) == (html, 0)
