"""nbgrader extensions, wired in by nbgrader_config.py.

- ClearSolutionsWithStarter: a find-and-fix answer cell ships its starter code (the cell's
  metadata `coursekit.starter`, e.g. a buggy block to repair) instead of the usual stub.
- StripSolutionMarkers: answer keys (`nbgrader generate_solution`) read as plain notebooks:
  no `### BEGIN/END SOLUTION` lines and no nbgrader metadata.
- HideHiddenTests: feedback shows what each test reported, never a hidden test's source:
  hidden regions are cut from test cells and error tracebacks are reduced to their last line
  (a traceback quotes the failing source line).
- FeedbackExporter: feedback pages as nbconvert's HTMLExporter makes them, without its closing
  BeautifulSoup pass (a re-parse and re-serialisation of the whole page: over half of
  generate_feedback's time per notebook). Of what that pass changes, only the images' alt text
  applies to nbgrader's feedback template; it is added in place. Code cells that repeat from
  page to page (teaching cells, tests) are syntax-highlighted once.
- CheckCellMetadataSchemaOnce: nbgrader's check of the cells' nbgrader metadata, with its JSON
  schema checked once per notebook. nbgrader calls `jsonschema.validate`, which first checks the
  schema itself against the JSON Schema meta-schema, before every cell: nine tenths of the check,
  which autograde runs twice per notebook (0.3 s per submission on a slow 2-core machine).
- ExecuteWithOutputCap: nbgrader's Execute, keeping at most `max_cell_output` bytes of output per
  cell and `max_notebook_output` per notebook. nbclient keeps every output message of the
  student's kernel in the grader's own memory, so a cell that prints without end (an output
  flood) would otherwise grow the grader, the graded notebook and the feedback page until the
  cell's time limit, with no sandbox in between. Once a cell is past its cap, the end of its
  output is not waited for: a kernel that floods faster than the grader reads fills the queues
  between them, where ZeroMQ drops what does not fit, the message that ends the cell included.
"""

import traceback
from html.parser import HTMLParser

import jsonschema

from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbgrader import utils
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import CheckCellMetadata, ClearHiddenTests, ClearSolutions, Execute, NbGraderPreprocessor
from nbformat.v4 import new_output
from traitlets import Integer

from .notebooks import is_test, without_markers


def starter_code(cell):
    """The code a find-and-fix answer cell starts from in the release, or None."""
    return cell.get("metadata", {}).get("coursekit", {}).get("starter")


class ClearSolutionsWithStarter(ClearSolutions):
    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        if utils.is_solution(cell) and starter_code(cell) is not None:
            cell.source = starter_code(cell)
        return cell, resources


class StripSolutionMarkers(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" or cell.cell_type == "markdown":
            cell.source = without_markers(cell.source)
        cell.metadata.pop("nbgrader", None)
        return cell, resources


class HideHiddenTests(ClearHiddenTests):
    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        if is_test(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


class _SchemaCheckedOnce(BaseMetadataValidator):
    """The JSON-schema step of nbgrader's cell validation, as `jsonschema.validate` does it (the
    best-matching error is raised) with the schema checked once per validator, not per cell."""

    def validate_cell(self, cell):
        meta = cell.metadata.get("nbgrader")
        if meta is None or meta.get("schema_version", 0) != self.schema_version:
            return super().validate_cell(cell)         # nothing to check, or nbgrader's version error
        if not hasattr(self, "_schema_validator"):
            cls = jsonschema.validators.validator_for(self.schema)
            cls.check_schema(self.schema)
            self._schema_validator = cls(self.schema)
        error = jsonschema.exceptions.best_match(self._schema_validator.iter_errors(meta))
        if error is not None:
            raise error


class MetadataValidatorSchemaOnce(MetadataValidator, _SchemaCheckedOnce):
    """nbgrader's metadata validator: its own checks (grade ids, points, cell types, duplicates)
    unchanged, on top of the schema step above (its `super().validate_cell` reaches that first)."""


class CheckCellMetadataSchemaOnce(CheckCellMetadata):
    """nbgrader's CheckCellMetadata (the same body, logs and error) with the validator above."""

    def preprocess(self, nb, resources):
        try:
            MetadataValidatorSchemaOnce().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources


MISSING_ALT = "No description has been provided for this image"   # HTMLExporter's words


class _ImagesWithoutAlt(HTMLParser):
    """Finds the (line, column) of every <img> start tag without an alt attribute."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, int]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img" and not any(name == "alt" for name, _ in attrs):
            self.found.append(self.getpos())


def with_image_alt_text(html: str) -> tuple[str, int]:
    """`html` with HTMLExporter's alt text on each image that has none; and how many had none."""
    parser = _ImagesWithoutAlt()
    parser.feed(html)
    parser.close()
    line_starts = [0]
    for line in html.split("\n")[:-1]:              # HTMLParser counts lines by "\n" alone
        line_starts.append(line_starts[-1] + len(line) + 1)
    pieces, done = [], 0
    for line, column in parser.found:
        at = line_starts[line - 1] + column + len("<img")
        pieces += [html[done:at], f' alt="{MISSING_ALT}"']
        done = at
    return "".join(pieces) + html[done:], len(parser.found)


class FeedbackExporter(HTMLExporter):
    """HTMLExporter without the BeautifulSoup pass (see the module's docstring). That pass also
    makes `jp-` cells focusable, which nbgrader's classic feedback layout does not have;
    tests/test_feedback_exporter.py checks its pages against HTMLExporter's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._highlighted: dict[tuple, str] = {}

    def from_notebook_node(self, nb, resources=None, **kw):
        # HTMLExporter.from_notebook_node of nbconvert 7.17, up to its BeautifulSoup pass
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))

        def highlight_code(source, language=None, metadata=None):
            # a class's pages repeat the same teaching and test cells: each is highlighted once
            key = (lexer, source, language, (metadata or {}).get("magics_language"))
            if key not in self._highlighted:
                self._highlighted[key] = highlight(source, language, metadata)
            return self._highlighted[key]

        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                 resources=resources)
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        html, missing = with_image_alt_text(html)
        if missing:
            self.log.warning("Alternative text is missing on %s image(s).", missing)
        return html, resources


class ExecuteWithOutputCap(Execute):
    """nbgrader's Execute with a cap on what a cell (and the notebook) may print: beyond it, outputs
    are dropped and one line says so. The kernel runs on; its time limits still apply."""

    max_cell_output = Integer(4 * 2**20, help="bytes of output kept per cell").tag(config=True)
    max_notebook_output = Integer(32 * 2**20, help="bytes of output kept per notebook").tag(config=True)
    NOTICE = "[output truncated by the grader: this cell printed more than {mb:g} MB]\n"

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes: dict[int, int] = {}
        self._truncated: set[int] = set()
        self._raise_on_iopub_timeout = self.raise_on_iopub_timeout
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self.raise_on_iopub_timeout = self._raise_on_iopub_timeout

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        # A capped cell's last messages (its error and the kernel's "idle") may never come: the
        # kernel's publisher drops messages while the grader's queue is full (ZeroMQ's high-water
        # mark), and under load the grader reads more slowly than a flooding kernel writes. For
        # such a cell, nbclient's wait for them (iopub_timeout) ends the cell instead of failing
        # the notebook; the cell's reply (or its timeout) has come on the shell channel already.
        self.raise_on_iopub_timeout = self._raise_on_iopub_timeout
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values()) \
            + sum(len(line) for line in content.get("traceback", []))
        used = self._output_bytes.get(cell_index, 0) + size
        self._output_bytes[cell_index] = used
        if used > self.max_cell_output or sum(self._output_bytes.values()) > self.max_notebook_output:
            if cell_index not in self._truncated:
                self._truncated.add(cell_index)
                self.raise_on_iopub_timeout = False       # for this cell (async_execute_cell)
                outs.append(new_output("stream", name="stderr",
                                       text=self.NOTICE.format(mb=self.max_cell_output / 2**20)))
            return None
        return super().output(outs, msg, display_id, cell_index)
