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
"""

from __future__ import annotations

import ast
import copy
import csv
import hashlib
import json
import math
import pickle
import random
import shutil
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO
from . import notebooks as nbs
from .config import load_course

TARGET = 0.95           # kill rate wanted among the non-equivalent mutants of every cell
EXAMPLES = 16           # hypothesis examples per mutant (each is one drawn input and its module)


# ---------------------------------------------------------------- operators
@dataclass(frozen=True)
class Mutant:
    cell: str
    name: str           # student name in the batch: m_<cell>_<index>
    operator: str
    line: int           # line of the reference cell (unparsed) the change is on
    before: str
    after: str
    code: str           # the whole cell, unparsed

    @property
    def diff(self) -> str:
        return f"L{self.line}: {self.before} → {self.after}"


# Calls never dropped: dropping them breaks the cell's syntax of use, not its behaviour.
KEEP_CALLS = {"super", "range", "len", "print", "isinstance", "float", "int", "list", "tuple", "dict",
              "enumerate", "zip", "tqdm"}
# Reductions and their confusions (attribute or keyword names).
RENAMES = {"mean": ["sum"], "sum": ["mean"], "amin": ["amax"], "amax": ["amin"], "max": ["min"],
           "min": ["max"], "train": ["eval"], "eval": ["train"], "softmax": ["log_softmax"],
           "relu": ["sigmoid"], "sigmoid": ["relu"], "cat": ["stack"], "MaxPool2d": ["AvgPool2d"],
           "ConvTranspose2d": ["Conv2d"], "BatchNorm2d": ["InstanceNorm2d"], "Sequential": ["ModuleList"],
           "state_dict": ["parameters"], "deepcopy": ["copy"], "AdamW": ["SGD"]}
LETTERS = ("a", "b", "c", "d")
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Div, ast.Pow: ast.Mult}
CMP_SWAPS = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Eq: ast.NotEq,
             ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _number_variants(value) -> list:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return sorted({value + 1, value - 1} - {value})
    if isinstance(value, float):
        return [0.0, value * 2] if value else [1.0]
    return []


def node_variants(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """(operator, replacement) for one expression node."""
    out = []
    if isinstance(node, ast.BinOp):
        if type(node.op) in BINOP_SWAPS:
            out.append(("binop", ast.BinOp(node.left, BINOP_SWAPS[type(node.op)](), node.right)))
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            out += [("drop operand", node.left), ("drop operand", node.right)]
        if isinstance(node.op, (ast.Sub, ast.Div, ast.FloorDiv, ast.MatMult, ast.Pow)):
            out.append(("swap operands", ast.BinOp(node.right, node.op, node.left)))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in CMP_SWAPS:
        out.append(("comparison", ast.Compare(node.left, [CMP_SWAPS[type(node.ops[0])]()], node.comparators)))
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(("boolean", ast.BoolOp(other, node.values)))
        out += [("drop condition", v) for v in node.values]
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        out.append(("drop unary", node.operand))
    elif isinstance(node, ast.Constant) and not isinstance(node.value, str):
        out += [("constant", ast.Constant(v)) for v in _number_variants(node.value)]
    elif isinstance(node, ast.Constant) and node.value in LETTERS:     # a quiz answer
        out += [("constant", ast.Constant(v)) for v in LETTERS if v != node.value]
    elif isinstance(node, ast.Call):
        name = _call_name(node)
        if name not in KEEP_CALLS and len(node.args) == 1 and not node.keywords \
                and not isinstance(node.args[0], ast.Starred):
            out.append(("drop call", node.args[0]))
        for i in range(len(node.args) - 1):
            if ast.dump(node.args[i]) != ast.dump(node.args[i + 1]):
                args = list(node.args)
                args[i], args[i + 1] = args[i + 1], args[i]
                out.append(("swap arguments", ast.Call(node.func, args, node.keywords)))
        for i in range(len(node.keywords)):
            if node.keywords[i].arg is not None:
                out.append(("drop keyword", ast.Call(node.func, node.args,
                                                     node.keywords[:i] + node.keywords[i + 1:])))
        if name == "range":
            for i, arg in enumerate(node.args[:2]):
                for op in (ast.Add(), ast.Sub()):
                    args = list(node.args)
                    args[i] = ast.BinOp(arg, op, ast.Constant(1))
                    out.append(("off by one", ast.Call(node.func, args, node.keywords)))
    elif isinstance(node, (ast.Tuple, ast.List)):
        for i in range(len(node.elts) - 1):
            if ast.dump(node.elts[i]) != ast.dump(node.elts[i + 1]):
                elts = list(node.elts)
                elts[i], elts[i + 1] = elts[i + 1], elts[i]
                out.append(("swap elements", type(node)(elts, node.ctx)))
    elif isinstance(node, ast.Attribute) and node.attr in RENAMES:
        out += [("rename", ast.Attribute(node.value, new, node.ctx)) for new in RENAMES[node.attr]]
    elif isinstance(node, ast.Slice):
        for part in ("lower", "upper"):
            bound = getattr(node, part)
            if bound is not None and not isinstance(bound, ast.Constant):
                for op in (ast.Add(), ast.Sub()):
                    out.append(("off by one", ast.Slice(**{**{k: getattr(node, k) for k in ("lower", "upper", "step")},
                                                           part: ast.BinOp(bound, op, ast.Constant(1))})))
    elif isinstance(node, ast.keyword) and node.arg in RENAMES:
        out += [("rename", ast.keyword(new, node.value)) for new in RENAMES[node.arg]]
    return out


def statement_variants(body: list[ast.stmt], i: int) -> list[tuple[str, list[ast.stmt]]]:
    """(operator, new body) for statement i of a block: drop it, move it after the next one, and
    for an `if`: its condition always or never true; `+=` as `=`."""
    stmt, out = body[i], []
    if _is_docstring(stmt) or isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return out
    rest = body[:i] + body[i + 1:]
    out.append(("drop statement", rest or [ast.Pass()]))
    if i + 1 < len(body) and not isinstance(body[i + 1], (ast.Return, ast.FunctionDef)) \
            and not isinstance(stmt, ast.Return):
        out.append(("move statement", body[:i] + [body[i + 1], stmt] + body[i + 2:]))
    if isinstance(stmt, ast.If):
        for value in (True, False):
            out.append(("condition", body[:i] + [ast.If(ast.Constant(value), stmt.body, stmt.orelse)] + body[i + 1:]))
    if isinstance(stmt, ast.AugAssign):
        out.append(("augmented assignment", body[:i] + [ast.Assign([stmt.target], stmt.value)] + body[i + 1:]))
    return out


def _sites(tree: ast.AST):
    """Every (parent, field, index) holding a node, in a deterministic order."""
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        yield parent, name, i
            elif isinstance(value, ast.AST):
                yield parent, name, None


def generate(cell: str, code: str) -> list[Mutant]:
    """The distinct, compilable mutants of one cell's reference code (never the reference itself)."""
    tree = ast.parse(code)
    reference = ast.unparse(tree)
    ref_lines = reference.splitlines()
    seen, found = {reference}, []
    n_sites = sum(1 for _ in _sites(tree))
    for k in range(n_sites):
        for variant in range(64):
            mutated = copy.deepcopy(tree)
            parent, name, i = list(_sites(mutated))[k]
            holder = getattr(parent, name)
            target = holder[i] if i is not None else holder
            if isinstance(target, ast.stmt) and i is not None:
                options = [(op, body) for op, body in statement_variants(holder, i)]
                if variant >= len(options):
                    break
                op, body = options[variant]
                setattr(parent, name, body)
                line = target.lineno
                moved = holder[i + 1] if op == "move statement" else None
            else:
                options = node_variants(target) if isinstance(target, (ast.expr, ast.keyword)) else []
                if isinstance(target, ast.expr) and isinstance(getattr(target, "ctx", None), (ast.Store, ast.Del)):
                    options = []
                if variant >= len(options):
                    break
                op, new = options[variant]
                new = copy.deepcopy(new)
                if i is None:
                    setattr(parent, name, new)
                else:
                    holder[i] = new
                line = getattr(target, "lineno", getattr(parent, "lineno", 1))
                moved = None
            ast.fix_missing_locations(mutated)
            try:
                text = ast.unparse(mutated)
                compile(text, f"<mutant of {cell}>", "exec")
            except (SyntaxError, ValueError, TypeError, AttributeError, RecursionError):
                continue
            if text in seen:
                continue
            seen.add(text)
            new_lines = text.splitlines()
            before, after = _changed_line(ref_lines, new_lines, line)
            if op in ("drop statement", "move statement"):      # say which statement, not the first changed line
                before = ast.unparse(target).splitlines()[0]
                after = "(dropped)" if moved is None else f"(moved below {ast.unparse(moved).splitlines()[0]})"
            found.append(Mutant(cell, f"m_{cell}_{len(found):03d}", op, line, before, after, text))
    return found


def _changed_line(old: list[str], new: list[str], hint: int) -> tuple[str, str]:
    """The first differing line of the reference and the mutant (stripped), for the report."""
    for a, b in zip(old, new):
        if a != b:
            return a.strip(), b.strip()
    if len(old) > len(new):
        return old[len(new)].strip(), "(deleted)"
    return (old[hint - 1].strip() if 0 < hint <= len(old) else ""), "(changed)"


def sample(mutants: list[Mutant], limit: int | None, seed: str) -> list[Mutant]:
    """At most `limit` mutants, drawn deterministically (the same ones on every run), in order."""
    if limit is None or len(mutants) <= limit:
        return mutants
    keep = set(random.Random(seed).sample(range(len(mutants)), limit))
    return [m for i, m in enumerate(mutants) if i in keep]


# ---------------------------------------------------------------- equivalence
PRELUDE = """
import copy, math, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
"""
# Imported only for cells that use them (seconds each on a loaded machine).
LAZY_IMPORTS = {"torchvision": "import torchvision", "roc_auc_score": "from sklearn.metrics import roc_auc_score"}


class NotEquivalent(AssertionError):
    pass


@contextmanager
def _deadline(seconds: int):
    def stop(*_):
        raise TimeoutError(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def namespace(code: str, needs: list[str]) -> dict:
    """A fresh namespace with the notebook's imports, the reference code of the cells it builds on
    (`needs`), then `code`."""
    ns: dict = {"__name__": "mutant"}
    exec(PRELUDE, ns)
    for name, line in LAZY_IMPORTS.items():
        if any(name in text for text in [*needs, code]):
            exec(line, ns)
    for text in [*needs, code]:
        exec(compile(text, "<cell>", "exec"), ns)
    return ns


def _same(a, b, what: str) -> None:
    import numpy as np
    import torch
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape \
                or a.dtype != b.dtype or not torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5, equal_nan=True):
            raise NotEquivalent(f"{what} differs")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
            raise NotEquivalent(f"{what} differs")
    elif isinstance(a, dict) and isinstance(b, dict):      # registration order is no behaviour
        if set(a) != set(b):
            raise NotEquivalent(f"{what}: keys {sorted(set(a) - set(b))} vs {sorted(set(b) - set(a))}")
        for k in a:
            _same(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            raise NotEquivalent(f"{what}: {type(a).__name__} of {len(a)} vs {type(b).__name__} of {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{what}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if type(a) is not type(b) or not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) \
                and not (math.isnan(a) and math.isnan(b)):
            raise NotEquivalent(f"{what}: {a!r} vs {b!r}")
    elif a != b or type(a) is not type(b):
        raise NotEquivalent(f"{what}: {a!r} vs {b!r}")


def _outcome(call):
    """('ok', value) or ('error', exception type name): two calls that fail alike behave alike."""
    try:
        return "ok", call()
    except (TimeoutError, NotEquivalent):
        raise
    except Exception as e:  # noqa: BLE001 (any error of the cell's code is an outcome to compare)
        return "error", type(e).__name__


def _same_outcome(a, b, what: str) -> None:
    if a[0] != b[0] or (a[0] == "error" and a[1] != b[1]):
        raise NotEquivalent(f"{what}: {a[0]} {a[1] if a[0] == 'error' else ''} vs {b[0]} "
                            f"{b[1] if b[0] == 'error' else ''}".strip())
    if a[0] == "ok":
        _same(a[1], b[1], what)


def _randomise(module, seed: int) -> None:
    """Non-trivial batch-norm statistics and affine parameters, so eval mode differs from train mode."""
    import torch
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def same_module(ref_ns: dict, mut_ns: dict, build: Callable[[dict], object], x) -> None:
    """Build both modules with the same arguments, load the reference's weights into the mutant
    (strict), and compare outputs, batch-norm statistics and the input afterwards, in train and eval mode."""
    import torch
    torch.manual_seed(0)
    ref_out = _outcome(lambda: build(ref_ns))
    mut_out = _outcome(lambda: build(mut_ns))
    _same_outcome(("ok", None) if ref_out[0] == "ok" else ref_out,
                  ("ok", None) if mut_out[0] == "ok" else mut_out, "construction")
    if ref_out[0] == "error":
        return
    ref, mut = ref_out[1], mut_out[1]
    _randomise(ref, 1)
    try:
        mut.load_state_dict(ref.state_dict())
    except Exception as e:  # noqa: BLE001
        raise NotEquivalent(f"the reference's weights do not load: {str(e).splitlines()[0][:120]}") from None
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        mut.train(mode == "train")
        xr, xm = x.clone(), x.clone()
        a = _outcome(lambda: ref(xr))
        b = _outcome(lambda: mut(xm))
        _same_outcome(a, b, f"output in {mode} mode")
        _same(xr, xm, f"the input after the call in {mode} mode")
        _same(dict(ref.state_dict()), dict(mut.state_dict()), f"the state after {mode} mode")


@dataclass(frozen=True)
class Contract:
    """How a graded cell is called, written from its contract in the notebook's text.
    `stop_after`: the test cell the mutants' grading stops at (None: the cell's last check);
    `needs`: graded cells whose reference code the cell builds on; `check(ref_ns, mut_ns, data)`
    draws one input with hypothesis's `data` and raises NotEquivalent; None with `why` when the
    contract cannot be sampled in-process."""

    check: Callable | None = None
    needs: tuple[str, ...] = ()
    stop_after: str | None = None
    why: str = ""
    examples: int = EXAMPLES


# Plain CPU tensors as a notebook's data loader gives them (hypothesis-torch also draws sparse layouts,
# channels-last memory and gradients unless told).
def _dense() -> dict:
    import torch
    return dict(layout=torch.strided, memory_format=torch.contiguous_format, requires_grad=False,
                device=torch.device("cpu"), pin_memory=False)


def _images(data, channels: int, sizes, batch=(1, 3)):
    """A float image batch: batch size `batch`, height and width drawn independently from `sizes`
    (non-square and odd sizes included), values from a drawn seed (drawing each pixel through
    hypothesis is slow for images and its shrinking is not needed here)."""
    import hypothesis.strategies as st
    import torch
    n = data.draw(st.integers(*batch), label="batch")
    h = data.draw(sizes, label="height")
    w = data.draw(sizes, label="width")
    seed = data.draw(st.integers(0, 2**16), label="pixel seed")
    return torch.randn(n, channels, h, w, generator=torch.Generator().manual_seed(seed))


def _optional(data, name: str, values, default) -> dict:
    """{} (the default used: defaults are contract too) half the time, else {name: a value drawn from `values`}."""
    import hypothesis.strategies as st
    if data.draw(st.booleans(), label=f"{name} by default"):
        return {}
    return {name: data.draw(values, label=name)}


def _widths(data, most: int, least: int = 1) -> tuple[int, int]:
    """Input and output channels, equal about half the time (an identity shortcut's case)."""
    import hypothesis.strategies as st
    cin = data.draw(st.integers(least, most), label="in")
    return cin, data.draw(st.one_of(st.just(cin), st.integers(least, most)), label="out")


def _residual_block(name):
    def check(ref_ns, mut_ns, data):
        import hypothesis.strategies as st
        cin, cout = _widths(data, 6)
        kw = _optional(data, "stride", st.integers(1, 3), 1)
        x = _images(data, cin, st.integers(1, 9))
        same_module(ref_ns, mut_ns, lambda ns: ns[name](cin, cout, **kw), x)
    return check


def _plain_vs_residual(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    residual = data.draw(st.booleans(), label="residual")
    if data.draw(st.booleans(), label="whole network"):
        depth = data.draw(st.sampled_from([8, 14]), label="depth")
        kw = {**_optional(data, "width", st.sampled_from([1, 3, 16]), 16),
              **_optional(data, "in_channels", st.integers(1, 3), 1),
              **_optional(data, "num_classes", st.integers(1, 3), 2)}
        x = _images(data, kw.get("in_channels", 1), st.integers(1, 12))
        same_module(ref_ns, mut_ns, lambda ns: ns["DeepCNN"](depth, residual, **kw), x)
    else:   # a block: the width only grows (a parameter-free shortcut pads channels), stride 1 or 2
        cin = data.draw(st.integers(1, 4), label="in")
        cout = cin + data.draw(st.one_of(st.just(0), st.integers(1, 4)), label="extra")
        stride = data.draw(st.integers(1, 2), label="stride")
        x = _images(data, cin, st.integers(1, 9))
        same_module(ref_ns, mut_ns, lambda ns: ns["Block"](cin, cout, stride, residual), x)


def _adapt_resnet18(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    kw = {**_optional(data, "in_channels", st.integers(1, 3), 1),
          **_optional(data, "num_classes", st.integers(1, 4), 2)}
    x = _images(data, kw.get("in_channels", 1), st.integers(17, 45), batch=(1, 2))
    same_module(ref_ns, mut_ns, lambda ns: ns["adapt_resnet18"](**kw), x)


def _double_conv(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    cin, cout = _widths(data, 5)
    x = _images(data, cin, st.integers(1, 11))
    same_module(ref_ns, mut_ns, lambda ns: ns["DoubleConv"](cin, cout), x)


def _unet(name):
    def check(ref_ns, mut_ns, data):
        import hypothesis.strategies as st
        kw = {**_optional(data, "in_channels", st.integers(1, 2), 1),
              **_optional(data, "out_channels", st.integers(1, 2), 1),
              "base_channels": data.draw(st.sampled_from([1, 2, 4]), label="base")}
        x = _images(data, kw.get("in_channels", 1), st.sampled_from([16, 32, 48]), batch=(1, 2))   # divisible by 16
        same_module(ref_ns, mut_ns, lambda ns: ns[name](**kw), x)
    return check


def _block_given_downsample(name, expansion):
    """A block of Notebook 4 (Bottleneck, PreActBlock): the caller gives the downsample, as _make_layer does."""
    def check(ref_ns, mut_ns, data):
        import hypothesis.strategies as st
        import torch.nn as nn
        cin, width = _widths(data, 6)
        if expansion != 1 and data.draw(st.booleans(), label="identity shortcut"):
            cin = width * expansion      # a bottleneck's identity case (cin = 4 × width) is rare otherwise
        cout = width * expansion
        stride = data.draw(st.integers(1, 2), label="stride")
        x = _images(data, cin, st.integers(1, 9))
        plain = stride == 1 and cin == cout and data.draw(st.booleans(), label="defaults")

        def build(ns):   # the contract: the caller gives the downsample
            if plain:
                return ns[name](cin, width)
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            return ns[name](cin, width, stride, down)
        same_module(ref_ns, mut_ns, build, x)
        _same(ref_ns[name].expansion, mut_ns[name].expansion, f"{name}.expansion")
    return check


def _make_layer(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    from torchvision.models.resnet import BasicBlock, Bottleneck
    block = data.draw(st.sampled_from([BasicBlock, Bottleneck]), label="block")
    blocks = [data.draw(st.integers(1, 2), label=f"blocks{k}") for k in range(4)]
    classes = data.draw(st.integers(1, 4), label="classes")
    x = _images(data, 3, st.integers(1, 9), batch=(1, 2))
    same_module(ref_ns, mut_ns, lambda ns: ns["ResNet"](block, blocks, num_classes=classes), x)
    if data.draw(st.booleans(), label="a stage at an unchanged width"):
        # The method's own contract, beyond the four stages ResNet builds (each of which widens the
        # tensor): stride 2 at an unchanged width changes the shape too.
        width, n = 64 * block.expansion, data.draw(st.integers(1, 2), label="stage blocks")

        def stage(ns):
            model = ns["ResNet"](block, [1, 1, 1, 1])
            model.in_channels = width
            return model._make_layer(block, 64, n, stride=2)
        same_module(ref_ns, mut_ns, stage, _images(data, width, st.integers(1, 9), batch=(1, 2)))


def _fixed_block(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    cin, filters = _widths(data, 5)
    kw = {**_optional(data, "kernel_size", st.sampled_from([1, 3, 5]), 3),
          **_optional(data, "stride", st.integers(1, 2), 1)}
    x = _images(data, cin, st.integers(1, 9))
    same_module(ref_ns, mut_ns, lambda ns: ns["ResidualBlock"](cin, filters, **kw), x)


def _tiny_classifier(seed: int, features: int, classes: int = 2):
    """A small model with dropout and batch norm: train and eval mode differ."""
    import torch
    import torch.nn as nn
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(6, classes))


def _batches(data, features: int, classes: int = 2):
    import hypothesis.strategies as st
    import torch
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4), label="batch sizes")
    seed = data.draw(st.integers(0, 2**16), label="data seed")
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(n, 1, 1, features, generator=g), torch.randint(0, classes, (n,), generator=g))
               for n in sizes]
    if sum(sizes) > 1:      # both classes present (ROC AUC is undefined otherwise)
        batches[0][1][0], batches[-1][1][-1] = 0, 1
    return batches


def _train_one_epoch(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    import torch
    features, seed = data.draw(st.integers(1, 4), label="features"), data.draw(st.integers(0, 99), label="seed")
    loader = _batches(data, features)
    if any(len(y) == 1 for _, y in loader):      # BatchNorm1d cannot train on one sample: both fail alike
        loader = [(x, y) for x, y in loader if len(y) > 1] or loader
    results = []
    for ns in (ref_ns, mut_ns):
        model = _tiny_classifier(seed, features).eval()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(seed)
        out = _outcome(lambda: ns["train_one_epoch"](model, loader, torch.nn.CrossEntropyLoss(), optimizer, "cpu"))
        results.append((out, dict(model.state_dict()), model.training))
    _same_outcome(results[0][0], results[1][0], "the returned loss")
    _same(results[0][1], results[1][1], "the weights after the epoch")


def _evaluate(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    import torch
    features, seed = data.draw(st.integers(1, 4), label="features"), data.draw(st.integers(0, 99), label="seed")
    loader = _batches(data, features)
    results = []
    for ns in (ref_ns, mut_ns):
        model = _tiny_classifier(seed, features).train()
        torch.manual_seed(seed)
        out = _outcome(lambda: ns["evaluate"](model, loader, "cpu"))
        results.append((out, dict(model.state_dict())))
    _same_outcome(results[0][0], results[1][0], "the returned metrics")
    _same(results[0][1], results[1][1], "the model after evaluation")


def _grad_cam(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    import torch
    import torch.nn as nn
    seed, classes = data.draw(st.integers(0, 99), label="seed"), data.draw(st.integers(1, 3), label="classes")
    x = _images(data, 1, st.integers(3, 13))
    targets = [data.draw(st.integers(0, classes - 1), label="target") for _ in range(len(x))]
    results = []
    for ns in (ref_ns, mut_ns):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1),
                              nn.BatchNorm2d(5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, classes))
        _randomise(model, seed)
        layer = model[2]
        out = _outcome(lambda: ns["grad_cam"](model, layer, x.clone(), targets))
        hooks = len(layer._forward_hooks) + len(layer._backward_hooks)
        results.append((out, hooks, dict(model.state_dict())))
    _same_outcome(results[0][0], results[1][0], "the maps")
    _same(results[0][1], results[1][1], "hooks left on the layer")
    _same(results[0][2], results[1][2], "the model after Grad-CAM")


def _dice(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    import torch
    from hypothesis_torch import tensor_strategy
    n, h, w = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    dtype = data.draw(st.sampled_from([torch.float32, torch.bool, torch.int64]), label="dtype")
    def mask(label):       # empty and full masks are in the domain too (0/0 without eps)
        kind = data.draw(st.sampled_from(["drawn", "empty", "full"]), label=f"{label} kind")
        if kind != "drawn":
            return torch.full((n, 1, h, w), kind == "full").to(dtype)
        return data.draw(tensor_strategy(dtype=torch.bool, shape=(n, 1, h, w), **_dense()), label=label).to(dtype)
    pred, target = mask("pred"), mask("target")
    kw = _optional(data, "eps", st.sampled_from([1e-6, 1.0]), 1e-6)
    _same_outcome(_outcome(lambda: ref_ns["dice_coefficient"](pred, target, **kw)),
                  _outcome(lambda: mut_ns["dice_coefficient"](pred, target, **kw)), "Dice")


# One row per graded cell of every assignment (a cell missing here is reported, not skipped).
CONTRACTS: dict[str, dict[str, Contract]] = {
    "resnet_blocks": {
        "residual_block": Contract(_residual_block("ResidualBlock")),
        "plain_vs_residual": Contract(_plain_vs_residual),
        "adapt_resnet18": Contract(_adapt_resnet18, examples=6),
    },
    "pneumonia_training": {
        "train_one_epoch": Contract(_train_one_epoch),
        "evaluate": Contract(_evaluate),
        # fit's own checks train on tiny problems; its last check follows ResNet18's 8 real epochs.
        "train_resnet": Contract(stop_after="test_train_resnet_best_epoch",
                                 why="a training loop with a progress bar and a schedule defined in other cells: graded only"),
        "grad_cam": Contract(_grad_cam),
    },
    "unet_segmentation": {
        "double_conv": Contract(_double_conv),
        "unet": Contract(_unet("UNet"), needs=("double_conv",)),
        "resnet_unet": Contract(_unet("ResNetUNet"), needs=("double_conv",), stop_after="test_resnet_unet_params"),
        "dice_coefficient": Contract(_dice),
        # its checks train on a tiny problem; test_train_unet_dice follows the real training run.
        "train_unet": Contract(stop_after="test_train_unet_checkpoint",
                               why="a training loop that calls evaluate_dice of another cell: graded only"),
    },
    "resnet_from_scratch": {
        "bottleneck_block": Contract(_block_given_downsample("Bottleneck", 4)),
        "preact_block": Contract(_block_given_downsample("PreActBlock", 1)),
        "make_layer": Contract(_make_layer, examples=4),   # ResNet-18/50 widths: seconds each
        "fixed_block": Contract(_fixed_block),
        "quiz": Contract(why="a quiz answer (a dict of letters): graded only"),
    },
}


def equivalent(contract: Contract, reference: str, code: str, needs: list[str],
               examples: int | None = None) -> tuple[bool, str]:
    """(True, "") when `code` behaves as `reference` on every drawn input, else (False, why)."""
    import torch
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.reporting import with_reporter
    torch.set_num_threads(1)      # tiny tensors: more threads only wait for each other (25 ms a batch norm)
    try:
        with _deadline(120):
            ref_ns, mut_ns = namespace(reference, needs), namespace(code, needs)
    except Exception as e:  # noqa: BLE001 (a mutant that fails to define its names differs)
        return False, f"defining the cell fails: {type(e).__name__}"

    @settings(max_examples=examples or contract.examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],      # the first difference is enough: no shrinking
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(st.data())
    def prop(data):
        contract.check(ref_ns, mut_ns, data)

    try:
        with _deadline(300), with_reporter(lambda *_: None):
            prop()
    except (NotEquivalent, TimeoutError) as e:
        return False, str(e)
    except Exception as e:  # noqa: BLE001 (the reference passed this harness: the mutant broke it)
        return False, f"{type(e).__name__} in the comparison"
    return True, ""


# ---------------------------------------------------------------- grading
@dataclass
class CellRow:
    cell: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int | None = 0          # None: the contract cannot be sampled
    equivalent_lost: int = 0
    seconds: float = 0.0
    tests: list[str] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        nonequivalent = [d for d in self.details if not d["equivalent"]]
        return sum(d["killed"] for d in nonequivalent) / len(nonequivalent) if nonequivalent else None


def stop_of(source, cell: str, contract: Contract) -> str:
    return contract.stop_after or nbs.test_cells_of(source, cell)[-1].id


def run(assignment_id: str, cells: list[str] | None = None, limit: int | None = None,
        jobs: int | None = None, out: Path | None = None, work: Path | None = None) -> list[CellRow]:
    """Generate, check and grade the mutants of one assignment; write <out>/<id>.md and .csv."""
    from .grading.batch import grade_batch
    a = load_course().assignments[assignment_id]
    source, release = nbs.read(a.notebook("source")), nbs.read(a.notebook("release"))
    reference = nbs.reference_answers(source)
    graded = [gid for gid in reference if nbs.test_cells_of(source, gid)]
    missing = set(graded) - set(CONTRACTS.get(assignment_id, {}))
    if missing:
        raise KeyError(f"{assignment_id}: no entry in coursekit.mutants.CONTRACTS for {sorted(missing)}: "
                       "add one (how to call the cell, or why it cannot be sampled)")
    if cells:
        unknown = set(cells) - set(graded)
        if unknown:
            raise KeyError(f"{assignment_id} has no graded cell {sorted(unknown)}; graded cells: {graded}")
    rows, by_stop = {}, {}
    for gid in [g for g in graded if not cells or g in cells]:
        contract = CONTRACTS[assignment_id][gid]
        started = time.monotonic()
        chosen = sample(generate(gid, reference[gid]), limit, f"{assignment_id}:{gid}")
        row = rows[gid] = CellRow(gid, len(chosen), equivalent=None if contract.check is None else 0)
        needs = [reference[n] for n in contract.needs]
        if contract.check is not None:
            same, why = equivalent(contract, reference[gid], reference[gid], needs)
            if not same:
                raise RuntimeError(f"{assignment_id}/{gid}: the reference differs from itself ({why}): "
                                   "fix its entry in coursekit.mutants.CONTRACTS")
        for m in chosen:
            same, why = (False, contract.why) if contract.check is None else equivalent(contract, reference[gid], m.code, needs)
            row.details.append(dict(mutant=m, equivalent=same, why=why, killed=False, status="", lost=""))
        row.seconds += time.monotonic() - started
        print(f"{assignment_id}/{gid}: {len(chosen)} mutants, equivalence checked in {row.seconds:.0f} s", flush=True)
        by_stop.setdefault(stop_of(source, gid, contract), []).append(gid)

    from .grading import layout

    work = work or layout.WORK / "mutants" / assignment_id
    out = out or layout.RESULTS / "mutants"
    for stop, gids in by_stop.items():
        started = time.monotonic()
        src_prefix, rel_prefix = nbs.prefix(source, stop), nbs.prefix(release, stop)
        # Earlier gradings are reused only against the same hidden tests: one folder per source prefix.
        stage = work / _digest(nbs.writes(src_prefix))[:12]
        answers = {g: c for g, c in reference.items() if g in nbs.cells_by_grade_id(rel_prefix)}
        notebooks = {d["mutant"].name: nbs.writes(nbs.make_submission(rel_prefix, {**answers, gid: d["mutant"].code}))
                     for gid in gids for d in rows[gid].details}
        store = graded_store(stage, stop)
        todo = {name: text for name, text in notebooks.items() if _digest(text) not in store}
        if todo:
            folder = stage / f"submissions-{stop}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            nbs.write(nbs.make_submission(rel_prefix, answers), folder / "reference.ipynb")
            for name, text in todo.items():
                (folder / f"{name}.ipynb").write_text(text)
            source_path = stage / f"{assignment_id}-{stop}.ipynb"
            nbs.write(src_prefix, source_path)
            report = grade_batch(assignment_id, folder, out=stage / f"results-{stop}", work=stage / f"work-{stop}",
                                 source=source_path, jobs=jobs)
            ref = report.results["reference"]
            if ref.score != ref.max_score:
                raise RuntimeError(f"{assignment_id}: the reference scored {ref.score}/{ref.max_score} up to {stop} "
                                   f"({ref.status} {ref.reason}): fix the notebook before analysing mutants")
            share = (time.monotonic() - started) / len(todo)
            for name, text in todo.items():
                r = report.results[name]
                store[_digest(text)] = dict(cells=r.cells, status=r.status, seconds=share)
            save_store(stage, stop, store)
        points = {c.id: float(nbs.nbgrader(c).get("points", 0)) for c in src_prefix.cells if nbs.is_test(c)}
        for gid in gids:
            tests = [t.id for t in nbs.test_cells_of(src_prefix, gid)]
            rows[gid].tests = tests
            for d in rows[gid].details:
                r = store[_digest(notebooks[d["mutant"].name])]
                lost = [t for t in tests if r["cells"].get(t, 0) < points[t]]
                d.update(killed=bool(lost), status=r["status"], lost=" ".join(lost))
                rows[gid].seconds += r["seconds"]
        write_report(assignment_id, [rows[g] for g in rows if rows[g].tests], out, limit, cells)   # so far
    result = [rows[g] for g in rows]
    for row in result:
        row.killed = sum(d["killed"] for d in row.details)
        row.survived = row.mutants - row.killed
        if row.equivalent is not None:
            row.equivalent = sum(d["equivalent"] for d in row.details)
        row.equivalent_lost = sum(d["equivalent"] and d["killed"] for d in row.details)
    with (work / "rows.pickle").open("wb") as f:      # the raw results, should a report need redoing
        pickle.dump(result, f)
    write_report(assignment_id, result, out, limit, cells)
    return result


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def graded_store(work: Path, stop: str) -> dict:
    """{sha256 of a mutant's notebook: its grading} from earlier runs: an interrupted or repeated run
    grades only the notebooks not graded before. Also adopts a batch that finished before the store
    was written (its submissions and cell_scores.csv)."""
    path = work / f"graded-{stop}.json"
    if path.exists():
        return json.loads(path.read_text())
    store, scores = {}, work / f"results-{stop}" / "cell_scores.csv"
    seconds = {}
    if (work / f"results-{stop}" / "status.csv").exists():
        from .grading.cpus import cpu_budget
        with (work / f"results-{stop}" / "status.csv").open() as f:      # worker seconds, shared by the workers
            seconds = {r["student"]: float(r["seconds"] or 0) / cpu_budget() for r in csv.DictReader(f)}
    if scores.exists():
        with scores.open() as f:
            for row in csv.DictReader(f):
                notebook = work / f"submissions-{stop}" / f"{row['student']}.ipynb"
                if row["student"] != "reference" and notebook.exists():
                    cells = {k: float(v) for k, v in row.items() if k not in ("student", "status") and v != ""}
                    store[_digest(notebook.read_text())] = dict(cells=cells, status=row["status"],
                                                               seconds=seconds.get(row["student"], 0.0))
    return store


def save_store(work: Path, stop: str, store: dict) -> None:
    (work / f"graded-{stop}.json").write_text(json.dumps(store))


# ---------------------------------------------------------------- report
COLUMNS = ["cell", "mutants", "killed", "survived", "equivalent", "equivalent lost points",
           "kill rate (non-equivalent)", "target 95 %", "minutes"]


def table_rows(rows: list[CellRow]) -> list[list[str]]:
    out = []
    for r in rows:
        rate = r.rate
        out.append([r.cell, str(r.mutants), str(r.killed), str(r.survived),
                    "n/a" if r.equivalent is None else str(r.equivalent), str(r.equivalent_lost),
                    "–" if rate is None else f"{100 * rate:.1f} %",
                    "–" if rate is None else ("met" if rate >= TARGET and not r.equivalent_lost else "NOT met"),
                    f"{r.seconds / 60:.1f}"])
    return out


def render(assignment_id: str, rows: list[CellRow], limit: int | None = None) -> str:
    """The markdown report: the table, then every survivor with its diff line and a reason slot."""
    lines = [f"# Mutation analysis: {assignment_id}", ""]
    if limit:
        lines += [f"At most {limit} mutants per cell (a deterministic sample).", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    for r in rows:
        if r.equivalent is None:
            lines += ["", f"`{r.cell}`: equivalence not sampled ({CONTRACTS[assignment_id][r.cell].why})."]
    for r in rows:
        survivors = [d for d in r.details if not d["killed"] or (d["equivalent"] and d["killed"])]
        if not survivors:
            continue
        lines += ["", f"## {r.cell}: survivors and equivalent mutants that lost points",
                  f"(graded tests: {', '.join(r.tests)})", "",
                  "| mutant | operator | change | equivalent | lost | reason |", "|---|---|---|---|---|---|"]
        for d in survivors:
            m = d["mutant"]
            eq = "n/a" if r.equivalent is None else ("yes" if d["equivalent"] else f"no: {d['why']}")
            lines.append(f"| {m.name} | {m.operator} | `{m.diff.replace('|', '¦')}` | {eq.replace('|', '¦')} | "
                         f"{d['lost'] or '–'} |  |")
    return "\n".join(lines) + "\n"


def write_report(assignment_id: str, rows: list[CellRow], out: Path, limit: int | None = None,
                 cells: list[str] | None = None) -> Path:
    """<out>/<id>.md and .csv; <id>-<cell>....md for a run of some cells (it replaces no full report)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "-".join([assignment_id, *(cells or [])])
    (out / f"{stem}.md").write_text(render(assignment_id, rows, limit))
    with (out / f"{stem}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cell", "mutant", "operator", "line", "before", "after", "equivalent", "why",
                         "killed", "status", "lost", "reason"])
        for r in rows:
            for d in r.details:
                m = d["mutant"]
                writer.writerow([r.cell, m.name, m.operator, m.line, m.before, m.after,
                                 "n/a" if r.equivalent is None else d["equivalent"], d["why"], d["killed"],
                                 d["status"], d["lost"], ""])
    return out / f"{stem}.md"


def print_table(assignment_id: str, rows: list[CellRow]) -> None:
    body = [COLUMNS, *table_rows(rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    print(f"{assignment_id}:")
    for line in body:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)))


def main(assignments: list[str] | None, cells: list[str] | None, limit: int | None, jobs: int | None) -> int:
    course = load_course()
    ids = assignments or list(course.assignments)
    missed = False
    for aid in ids:
        wanted = [c for c in cells or [] if c in CONTRACTS.get(aid, {})]
        if cells and not wanted:
            continue
        started = time.monotonic()
        rows = run(aid, cells=wanted or None, limit=limit, jobs=jobs)
        print_table(aid, rows)
        stem = "-".join([aid, *wanted])
        print(f"  {sum(r.mutants for r in rows)} mutants in {(time.monotonic() - started) / 60:.1f} min; report: "
              f"autograder/results/mutants/{stem}.md and .csv")
        missed |= any(r.rate is not None and (r.rate < TARGET or r.equivalent_lost) for r in rows)
    return 1 if missed else 0
