"""nbgrader extensions, wired in by nbgrader_config.py.

- ClearSolutionsWithStarter: a find-and-fix answer cell ships its starter code (the cell's
  metadata `coursekit.starter`, e.g. a buggy block to repair) instead of the usual stub.
- StripSolutionMarkers: answer keys (`nbgrader generate_solution`) read as plain notebooks:
  no `### BEGIN/END SOLUTION` lines and no nbgrader metadata.
- HideHiddenTests: feedback shows what each test reported, never a hidden test's source:
  hidden regions are cut from test cells and error tracebacks are reduced to their last line
  (a traceback quotes the failing source line).
"""

from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, NbGraderPreprocessor

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
