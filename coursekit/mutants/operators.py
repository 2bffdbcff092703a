"""The mutation operators: every mutant of a graded cell's reference code, and a seeded sample."""

from __future__ import annotations

import ast
import copy
import random
from dataclasses import dataclass


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
