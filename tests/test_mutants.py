"""`make mutants`' parts on small snippets, in seconds: the operators, deduplication, the equivalence
check (a rewritten-but-equal module is equivalent, a stride change or a height/width swap is not)
and the report. The grading of mutants is the kit's own batch grading, tested by test_grading.py."""

import ast

from coursekit import mutants as M
from coursekit.mutants import contracts, grading

BLOCK = '''
class Block(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)) + x[:, :, ::self.conv.stride[0], ::self.conv.stride[1]].mean(dim=1, keepdim=True))
'''.strip()


def changes(code):
    return {(m.operator, m.code) for m in M.generate("cell", code)}


def test_operators_on_small_snippets():
    found = changes("y = F.relu(a + b)")
    assert ("drop call", "y = a + b") in found                       # the ReLU dropped
    assert ("drop operand", "y = F.relu(a)") in found                # the residual addition dropped
    assert ("binop", "y = F.relu(a - b)") in found
    assert ("rename", "y = F.sigmoid(a + b)") in found
    found = changes("z = nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1)")
    assert ("swap arguments", "z = nn.Conv2d(cout, cin, kernel_size=3, stride=2, padding=1)") in found
    assert {("constant", f"z = nn.Conv2d(cin, cout, kernel_size={k}, stride=2, padding=1)") for k in (2, 4)} <= found
    assert ("constant", "z = nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)") in found
    assert ("drop keyword", "z = nn.Conv2d(cin, cout, kernel_size=3, stride=2)") in found
    assert ("swap elements", "m = x.mean(dim=(3, 2))") in changes("m = x.mean(dim=(2, 3))")
    assert ("rename", "m = x.sum(dim=(2, 3))") in changes("m = x.mean(dim=(2, 3))")
    assert ("swap elements", "s = x[:, :, ::b, ::a]") in changes("s = x[:, :, ::a, ::b]")
    assert ("off by one", "for i in range(n + 1):\n    f(i)") in changes("for i in range(n):\n    f(i)")
    assert ("comparison", "if a >= b:\n    c = 1") in changes("if a > b:\n    c = 1")
    assert ("condition", "if True:\n    c = 1") in changes("if a > b:\n    c = 1")
    assert ("move statement", "b = 2\na = 1\nc = a + b") in changes("a = 1\nb = 2\nc = a + b")
    assert ("augmented assignment", "t = x\nr = t") in changes("t += x\nr = t")
    assert ("constant", "q = {'q1': 'c'}") in changes('q = {"q1": "b"}')


def test_mutants_are_distinct_compilable_and_never_the_reference():
    code = "def f(a, b):\n    return a + b\n"
    found = M.generate("cell", code)
    texts = [m.code for m in found]
    assert len(texts) == len(set(texts)), "a duplicate mutant"
    assert ast.unparse(ast.parse(code)) not in texts
    for text in texts:
        compile(text, "<mutant>", "exec")
    # `a + b` → `b + a` and a dropped ReLU of an already dropped call are one text each: counted once
    assert len(found) == len({(m.operator, m.code) for m in found})
    picked = M.sample(found, 3, "seed")
    assert len(picked) == 3 and picked == M.sample(found, 3, "seed"), "the sample is not deterministic"


def check_block(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    cin, cout = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    stride = data.draw(st.integers(1, 2))
    x = contracts._images(data, cin, st.integers(1, 7))
    M.same_module(ref_ns, mut_ns, lambda ns: ns["Block"](cin, cout, stride=stride), x)


CONTRACT = M.Contract(check_block, examples=25)


def test_equivalence_accepts_an_equal_rewrite():
    rewritten = BLOCK.replace("padding=1", "padding=(1, 1)").replace("F.relu(", "torch.clamp(").replace(
        "keepdim=True))", "keepdim=True), min=0)")
    assert M.equivalent(CONTRACT, BLOCK, rewritten, []) == (True, "")


def test_equivalence_rejects_a_stride_change_and_a_height_width_swap():
    same, why = M.equivalent(CONTRACT, BLOCK, BLOCK.replace("stride=stride", "stride=1"), [])
    assert not same and "differs" in why
    swapped = BLOCK.replace("::self.conv.stride[0], ::self.conv.stride[1]", "::self.conv.stride[1], ::self.conv.stride[0]")
    swapped = swapped.replace("stride=stride,", "stride=(stride, 1),")      # only a non-square stride tells them apart
    same, _ = M.equivalent(CONTRACT, BLOCK.replace("stride=stride,", "stride=(stride, 1),"), swapped, [])
    assert not same
    same, why = M.equivalent(CONTRACT, BLOCK, BLOCK.replace("self.bn = nn.BatchNorm2d(cout)",
                                                            "self.norm = nn.BatchNorm2d(cout)\n        self.bn = self.norm"), [])
    assert not same and "weights do not load" in why      # another state_dict: not equivalent


def test_equivalence_compares_eval_mode_too():
    eval_differs = BLOCK.replace("    def forward(self, x):\n        return ",
                                 "    def forward(self, x):\n        return (1 if self.training else 2) * ")
    same, why = M.equivalent(CONTRACT, BLOCK, eval_differs, [])
    assert not same and "eval mode" in why, why


def test_report_renders_the_table_and_every_survivor():
    mutant = M.Mutant("residual_block", "m_residual_block_007", "drop call", 3, "return F.relu(x)", "return x", "")
    row = M.CellRow("residual_block", mutants=3, killed=1, survived=2, equivalent=1, seconds=90,
                    tests=["test_residual_block_shapes"],
                    details=[dict(mutant=mutant, equivalent=False, why="output in train mode differs", killed=False,
                                  status="graded", lost=""),
                             dict(mutant=mutant, equivalent=True, why="", killed=False, status="graded", lost=""),
                             dict(mutant=mutant, equivalent=False, why="x", killed=True, status="graded",
                                  lost="test_residual_block_shapes")])
    text = M.render("resnet_blocks", [row])
    assert "| residual_block | 3 | 1 | 2 | 1 | 0 | 50.0 % | NOT met | 1.5 |" in text
    assert text.count("m_residual_block_007") == 2           # the two that kept every point
    assert "`L3: return F.relu(x) → return x`" in text


def test_every_graded_cell_has_a_contract():
    from coursekit import notebooks as nbs
    from coursekit.config import load_course
    for aid, a in load_course().assignments.items():
        source = nbs.read(a.notebook("source"))
        graded = {g for g in nbs.reference_answers(source) if nbs.test_cells_of(source, g)}
        assert graded == set(M.CONTRACTS[aid]), f"{aid}: CONTRACTS lists {sorted(M.CONTRACTS[aid])}, graded {sorted(graded)}"
        for gid, contract in M.CONTRACTS[aid].items():
            assert contract.check or contract.why, f"{aid}/{gid}: no check and no reason why not"
            stop = M.stop_of(source, gid, contract)
            assert stop in {c.id for c in nbs.test_cells_of(source, gid)}, f"{aid}/{gid}: stops at {stop}"


def test_an_interrupted_run_resumes_from_the_graded_notebooks(tmp_path):
    (tmp_path / "submissions-t").mkdir()
    (tmp_path / "results-t").mkdir()
    (tmp_path / "submissions-t" / "m_a_000.ipynb").write_text("notebook text")
    (tmp_path / "submissions-t" / "reference.ipynb").write_text("reference text")
    (tmp_path / "results-t" / "cell_scores.csv").write_text(
        "student,status,test_a,test_b\nm_a_000,graded,2.0,0.0\nreference,graded,2.0,3.0\n")
    store = M.graded_store(tmp_path, "t")
    assert store == {grading._digest("notebook text"): dict(cells={"test_a": 2.0, "test_b": 0.0}, status="graded", seconds=0.0)}
    M.save_store(tmp_path, "t", {})
    assert M.graded_store(tmp_path, "t") == {}, "the saved store wins over the adopted batch"
