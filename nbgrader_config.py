"""nbgrader configuration for the course (loaded by every nbgrader command run in this folder)."""

import os

from coursekit.config import load_course
from coursekit.nbgrader_ext import (CheckCellMetadataSchemaOnce, ClearSolutionsWithStarter, ExecuteWithOutputCap,
                                   FeedbackExporter, HideHiddenTests, StripSolutionMarkers)
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput,
                                    ClearSolutions, Execute, GetGrades)

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)


def swapped(converter, trait, swaps):
    """nbgrader's default list of preprocessors of `converter.trait`, with `swaps` {theirs: ours}."""
    return [swaps.get(p, p) for p in converter.class_traits()[trait].make_dynamic_default()]


c.CourseDirectory.course_id = load_course().id
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.solution_directory = "solutions"

# Student stubs: the hints stay as comments above the region; the region becomes this.
c.ClearSolutions.code_stub = {"python": "# TODO: your code here\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# ...except find-and-fix cells, which start from their `coursekit.starter` code.
# nbgrader's metadata check, with the JSON schema checked once per notebook instead of per cell.
METADATA_CHECK = {CheckCellMetadata: CheckCellMetadataSchemaOnce}
c.GenerateAssignment.preprocessors = swapped(GenerateAssignment, "preprocessors",
                                             {ClearSolutions: ClearSolutionsWithStarter, **METADATA_CHECK})
c.Autograde.sanitize_preprocessors = swapped(Autograde, "sanitize_preprocessors", METADATA_CHECK)
# Graded kernels run with a cap on what a cell may print (an output flood would grow the grader).
c.Autograde.autograde_preprocessors = swapped(Autograde, "autograde_preprocessors",
                                              {**METADATA_CHECK, Execute: ExecuteWithOutputCap})

# Teaching and setup cells marked read-only stay locked in the release, like grade cells.
c.LockCells.lock_readonly_cells = True
c.LockCells.lock_grade_cells = True

# Cells that train models need longer than nbgrader's 30 s default; per-assignment values
# (course.toml cell_timeout) are passed on the command line by coursekit.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# Answer keys: solutions filled in, no markers, no hidden tests, executed with outputs.
# (coursekit's freshness check compares code only and sets COURSEKIT_SKIP_EXECUTE.)
c.GenerateSolution.preprocessors = [ClearOutput, ClearMarkScheme, ClearHiddenTests,
                                    StripSolutionMarkers]
if not os.environ.get("COURSEKIT_SKIP_EXECUTE"):
    c.GenerateSolution.preprocessors.append(Execute)

# Feedback never shows hidden test source (nor in tracebacks).
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
# ...and is made without HTMLExporter's page-wide BeautifulSoup pass (half the time of each page).
c.GenerateFeedback.exporter_class = FeedbackExporter
