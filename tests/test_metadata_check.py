"""nbgrader's cell-metadata check with its JSON schema checked once per notebook
(`CheckCellMetadataSchemaOnce`): the same verdicts and errors as nbgrader's own check, and wired in
wherever nbgrader_config.py has nbgrader run that check."""

import copy

import jsonschema
import pytest
from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import CheckCellMetadata

from coursekit import REPO, nbgrader_run
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.nbgrader_ext import CheckCellMetadataSchemaOnce, MetadataValidatorSchemaOnce

SOURCES = {aid: a.notebook("source") for aid, a in load_course().assignments.items()}


def graded_cell(nb):
    return next(c for c in nb.cells if nbs.nbgrader(c).get("grade") and c.cell_type == "code")


def broken(name):
    """resnet_blocks' source with one mistake in its nbgrader metadata."""
    nb = nbs.read(SOURCES["resnet_blocks"])
    meta = graded_cell(nb).metadata.nbgrader
    if name == "points_not_a_number":
        meta["points"] = "three"
    elif name == "grade_missing":
        del meta["grade"]
    elif name == "unknown_key_type":
        meta["locked"] = "yes"
    elif name == "schema_too_old":
        meta["schema_version"] = 2
    elif name == "schema_too_new":
        meta["schema_version"] = 4
    elif name == "grade_id_empty":
        meta["grade_id"] = ""
    elif name == "points_missing":
        del meta["points"]
    elif name == "duplicate_grade_id":
        other = [c for c in nb.cells if nbs.nbgrader(c).get("grade")][1]
        other.metadata.nbgrader["grade_id"] = meta["grade_id"]
    return nb


def outcome(validator, nb):
    try:
        validator.validate_nb(copy.deepcopy(nb))
    except Exception as err:          # the exception nbgrader's check would see
        return type(err), str(err)
    return None


@pytest.mark.parametrize("aid", list(SOURCES))
def test_course_notebooks_pass_both_checks(aid):
    for nb in (nbs.read(SOURCES[aid]), nbs.read(load_course().assignments[aid].notebook("release"))):
        assert outcome(MetadataValidator(), nb) is None
        assert outcome(MetadataValidatorSchemaOnce(), nb) is None


@pytest.mark.parametrize("name", ["points_not_a_number", "grade_missing", "unknown_key_type", "schema_too_old",
                                  "schema_too_new", "grade_id_empty", "points_missing", "duplicate_grade_id"])
def test_broken_metadata_fails_as_in_nbgrader(name):
    nb = broken(name)
    expected = outcome(MetadataValidator(), nb)
    assert expected is not None, f"nbgrader accepts {name}: not a broken case"
    assert outcome(MetadataValidatorSchemaOnce(), nb) == expected


def test_the_schema_is_checked_once_per_notebook(monkeypatch):
    nb = nbs.read(SOURCES["resnet_blocks"])
    validator = MetadataValidatorSchemaOnce()
    cls = jsonschema.validators.validator_for(validator.schema)
    calls = []
    check = cls.check_schema
    monkeypatch.setattr(cls, "check_schema", classmethod(lambda c, schema, **kw: calls.append(1) or check(schema, **kw)))
    MetadataValidator().validate_nb(nb)
    theirs = len(calls)
    validator.validate_nb(nb)
    assert theirs == sum("nbgrader" in c.metadata for c in nb.cells) > 10
    assert len(calls) - theirs == 1


def test_nbgrader_runs_our_check_wherever_it_ran_its_own():
    config = nbgrader_run.course_config(REPO)
    lists = {"GenerateAssignment.preprocessors": GenerateAssignment(config=config).preprocessors,
             "Autograde.sanitize_preprocessors": Autograde(config=config).sanitize_preprocessors,
             "Autograde.autograde_preprocessors": Autograde(config=config).autograde_preprocessors}
    defaults = {"GenerateAssignment.preprocessors": GenerateAssignment.class_traits()["preprocessors"],
                "Autograde.sanitize_preprocessors": Autograde.class_traits()["sanitize_preprocessors"],
                "Autograde.autograde_preprocessors": Autograde.class_traits()["autograde_preprocessors"]}
    for name, preprocessors in lists.items():
        default = defaults[name].make_dynamic_default()
        assert CheckCellMetadata in default, f"nbgrader's {name} no longer has CheckCellMetadata"
        assert CheckCellMetadata not in preprocessors, name
        assert preprocessors.index(CheckCellMetadataSchemaOnce) == default.index(CheckCellMetadata), name
        assert len(preprocessors) == len(default), name
