"""Mutation analysis of the hidden tests (`make mutants`): wrong answers nobody wrote down.

Each graded solution cell's reference code is mutated with AST operators (drop a call such as a
ReLU or a layer, drop an operand of a sum such as the residual addition, swap operands, arguments
and tuple elements such as height/width or in/out channels, change constants such as strides,
kernel sizes, paddings, dims and channel counts by one, swap reductions such as mean/sum, flip
comparisons and booleans, drop or move a statement, off-by-one in `range`). Mutants whose code is
identical after unparsing are kept once; mutants that do not compile are skipped.

Every mutant is graded through the kit's own path, as the grading suite grades its fixtures: the
release with that one cell replaced, one `grade_batch` per (assignment, prefix) with every mutant
as a student, graded up to the cell's last check before a long training run (CONTRACTS). Besides,
each mutant is checked in this process for *equivalence* with the reference: same outputs on a
property-based sample (hypothesis) of the cell's contract, modules compared under the reference's
weights in train and eval mode. Killed: lost at least one point of its cell; survived: kept all.

The steps, one module each: `operators` (the mutants), `equivalence` (the side-by-side harness),
`contracts` (each cell's contract and `equivalent`), `grading` (`run`, the verdict store, `main`),
`report` (the rows and their table).
"""

from .contracts import CONTRACTS, EXAMPLES, Contract, equivalent
from .equivalence import NotEquivalent, namespace, same_module
from .grading import graded_store, main, run, save_store, stop_of
from .operators import Mutant, generate, sample
from .report import TARGET, CellRow, render, write_report

__all__ = ["CONTRACTS", "EXAMPLES", "TARGET", "CellRow", "Contract", "Mutant", "NotEquivalent", "equivalent",
           "generate", "graded_store", "main", "namespace", "render", "run", "same_module", "sample",
           "save_store", "stop_of", "write_report"]
