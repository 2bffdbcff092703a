"""ExecuteWithOutputCap (coursekit.nbgrader_ext) with a real kernel: a cell's output is kept up to the
cap and one line says the rest was dropped; a capped cell whose last messages never come (ZeroMQ
drops what does not fit while a flooding kernel outruns the grader) ends there and the notebook
goes on, where nbclient alone would abandon the whole notebook."""

from nbformat.v4 import new_code_cell, new_notebook

from coursekit.nbgrader_ext import ExecuteWithOutputCap

CAP = 64 * 2**10
FLOOD = "for _ in range(40):\n    print('flood ' * 2000, flush=True)"     # 480 kB, then it ends


class LosesTheEnd(ExecuteWithOutputCap):
    """The cap, with the loss the grader meets under load: the kernel's "idle" of a capped cell
    never arrives."""

    def process_message(self, msg, cell, cell_index):
        if cell_index in self._truncated and msg["msg_type"] == "status":
            return None
        return super().process_message(msg, cell, cell_index)


def run(preprocessor, *sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    preprocessor.preprocess(nb, {"metadata": {"path": "."}})
    return nb


def text(cell):
    return "".join(o.get("text", "") for o in cell.outputs)


def test_output_beyond_the_cap_is_dropped_and_said():
    nb = run(ExecuteWithOutputCap(max_cell_output=CAP, timeout=60), FLOOD, "print('after')")
    flood = text(nb.cells[0])
    assert CAP - 12_001 <= len(flood) <= CAP + 200, len(flood)
    assert "[output truncated by the grader" in flood
    assert text(nb.cells[1]) == "after\n"


def test_a_capped_cell_whose_end_is_lost_does_not_stop_the_notebook():
    preprocessor = LosesTheEnd(max_cell_output=CAP, timeout=60, iopub_timeout=1)
    nb = run(preprocessor, FLOOD, "print('after')", "print('and after')")
    assert "[output truncated by the grader" in text(nb.cells[0])
    assert text(nb.cells[1]) == "after\n" and text(nb.cells[2]) == "and after\n"
    assert preprocessor.raise_on_iopub_timeout           # as configured, once the notebook is done


def test_an_uncapped_cell_whose_end_is_lost_still_fails():
    """Only a capped cell is let go: anywhere else a missing end of output is nbclient's error."""
    import pytest
    from nbclient.exceptions import CellTimeoutError

    class LosesEveryEnd(ExecuteWithOutputCap):
        def process_message(self, msg, cell, cell_index):
            return None if msg["msg_type"] == "status" else super().process_message(msg, cell, cell_index)

    with pytest.raises(CellTimeoutError, match="IOPub"):
        run(LosesEveryEnd(max_cell_output=CAP, timeout=60, iopub_timeout=1), "print('short')")
