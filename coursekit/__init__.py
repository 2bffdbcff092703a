"""coursekit: build, check and grade the ResNet & U-Net medical-imaging notebook course.

The heavy lifting is nbgrader's (compile, autograde, feedback, export) and nbval's (execute);
this package configures and extends them, and holds the few helpers the Makefile drives.
"""

import importlib
import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IRI_GRAMMARS = "rfc3987_syntax"


def defer_iri_grammars() -> None:
    """Build rfc3987_syntax's parsers on first use instead of at import.

    jsonschema imports it (when installed: jupyter-events requires jsonschema[format-nongpl]) for
    its "iri" format checker, and it builds 38 Lark grammars at import: 2.3–2.8 s of CPU in every
    process that imports nbformat, i.e. every grading process (a Gradescope run_autograder, a
    `make grade` worker), for a checker that notebook validation never calls. This puts a stand-in
    in sys.modules whose functions import the real module when first called, so an "iri" check,
    if anything asks for one, still runs the real parser."""
    if IRI_GRAMMARS in sys.modules or importlib.util.find_spec(IRI_GRAMMARS) is None:
        return
    stand_in = types.ModuleType(IRI_GRAMMARS, "Stand-in: the real module is imported on first use.")

    def real() -> types.ModuleType:
        if sys.modules.get(IRI_GRAMMARS) is stand_in:
            del sys.modules[IRI_GRAMMARS]
        return importlib.import_module(IRI_GRAMMARS)

    def is_valid_syntax(term: str, value: str) -> bool:
        return real().is_valid_syntax(term, value)

    stand_in.is_valid_syntax = is_valid_syntax

    def __getattr__(name: str):
        if name.startswith("__"):               # the import system probing (__path__, ...)
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.__getattr__ = __getattr__
    sys.modules[IRI_GRAMMARS] = stand_in


defer_iri_grammars()
