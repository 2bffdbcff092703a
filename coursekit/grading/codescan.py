"""Static review of student code: what reaches into the interpreter or the grader, with its line.

Not a list of forbidden targets but of *capabilities* that answer cells never need: answer cells
may import and use the course's libraries and define classes and functions. Reported, however the
code spells it:

- code execution and reflection builtins: exec, eval, compile, __import__, globals, vars, locals,
  breakpoint, get_ipython, __builtins__, and setattr/delattr on anything but `self`;
- modules that reach into the interpreter, the grader, processes or the network: importlib,
  builtins, ctypes, gc, inspect, dis, marshal, types, signal, threading, multiprocessing, socket,
  subprocess, urllib, IPython (except IPython.display), nbgrader, coursekit, ...; `sys` beyond its
  streams, its version and membership tests of `sys.modules`, and `os`'s process, signal and
  identity functions, under any name the cell gives them (`import sys as s`, `s2 = s`);
- dunder and frame/code attributes beyond the ordinary ones (`__init__`, `__name__`, ...):
  `__dict__`, `__code__`, `__globals__`, `__closure__`, `__subclasses__`, `f_back`, `tb_frame`, ...;
- assignments to (or deletions of) attributes of imported modules and library classes, however
  they are aliased in the cell (`torch.allclose = ...`, `t = torch; t.x = ...`), except a few
  documented settings (`torch.backends.cudnn.benchmark`, ...), and `global` statements naming them
  (a function that rebinds `torch` for the course's helpers while a test runs);
- tensor subclasses and `__torch_function__`/`__torch_dispatch__` overrides (they can forge the
  results of comparisons); IPython shell escapes and magics other than %time, %timeit,
  %matplotlib, %pip, %config, %load_ext/%autoreload, %%capture and `?`; the code that %time,
  %timeit, %%time, %%timeit and %%capture run is scanned like the rest of the cell.

Whatever a spelling hides from this scan, the verification run's audit hook and integrity checks
still see at run time (runner.py); a finding makes the submission *needs review*.
"""

from __future__ import annotations

import ast
import re

from .runner import statement_of       # how the verification run reads %timeit's options

REFLECTIVE_NAMES = {"exec", "eval", "compile", "__import__", "globals", "vars", "locals", "breakpoint",
                    "get_ipython", "__builtins__", "__builtin__", "__loader__", "__spec__"}
FORBIDDEN_MODULES = {
    "importlib", "builtins", "__builtin__", "ctypes", "_ctypes", "gc", "inspect", "dis", "marshal",
    "types", "code", "codeop", "runpy", "site", "signal", "_signal", "threading", "_thread",
    "multiprocessing", "concurrent", "asyncio", "socket", "ssl", "select", "selectors", "subprocess",
    "pty", "posix", "_posixsubprocess", "urllib", "http", "requests", "ftplib", "smtplib", "telnetlib",
    "xmlrpc", "faulthandler", "tracemalloc", "trace", "sysconfig", "resource", "fcntl", "mmap",
    "atexit", "ipykernel", "jupyter_client", "zmq", "nbformat", "nbclient", "nbgrader", "coursekit",
    "_hashlib", "hmac", "pdb", "bdb", "traceback", "linecache", "weakref", "_weakref", "sqlite3",
    "unittest"}     # unittest.mock.patch: library code setting a library's attributes (the runner lets it)
ALLOWED_SUBMODULES = {"IPython.display"}
ALLOWED_SYS = {"stdout", "stderr", "version", "version_info", "platform", "maxsize", "float_info",
               "byteorder"}
FORBIDDEN_OS = re.compile(r"^(system|popen|exec\w*|spawn\w*|posix_spawnp?|fork\w*|kill\w*|_exit|abort|setsid|"
                          r"set\w*id|setgroups|chroot|putenv|unsetenv|pidfd_open|register_at_fork|"
                          r"openpty|dup2?|fchdir)$")
ALLOWED_DUNDERS = {"__init__", "__name__", "__class__", "__doc__", "__module__", "__qualname__",
                   "__version__", "__len__", "__call__", "__getitem__", "__setitem__", "__iter__",
                   "__next__", "__enter__", "__exit__", "__repr__", "__str__", "__file__",
                   "__annotations__", "__contains__", "__add__", "__mul__", "__eq__", "__hash__"}
FRAME_ATTRIBUTE_PATTERN = re.compile(r"^(tb_frame|tb_next|tb_lasti|f_back|f_locals|f_globals|f_builtins|f_code|"
                              r"f_trace\w*|gi_frame|gi_code|cr_frame|cr_code|ag_frame|ag_code|co_\w+|"
                              r"cell_contents)$")
ALLOWED_SETTINGS = {"torch.backends.cudnn.benchmark", "torch.backends.cudnn.deterministic",
                    "torch.backends.cudnn.enabled", "torch.backends.cudnn.allow_tf32",
                    "torch.backends.cuda.matmul.allow_tf32"}
ALLOWED_MAGICS = {"time", "timeit", "matplotlib", "pip", "config", "load_ext", "autoreload", "capture",
                  "pinfo", "pinfo2"}
TORCH_OVERRIDES = {"__torch_function__", "__torch_dispatch__"}


def transform_magics(code: str) -> str:
    """The cell as Python: IPython's own transformation of %magics and !shell lines."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(code)


def scan(code: str, library_names: set[str] = frozenset()) -> list[str]:
    """Findings in one cell of student code, as "line N: what". `library_names` are the names the
    notebook's own cells bind to modules and library objects (torch, nn, F, np, ...)."""
    findings = []
    python = transform_magics(code)
    for match in re.finditer(r"get_ipython\(\)\.(run_line_magic|run_cell_magic|system|getoutput)\('([^']*)'",
                             python):
        name = match.group(2).lstrip("%")
        if match.group(1) in ("system", "getoutput"):
            findings.append(f"a shell command (!{name.split()[0] if name else ''})")
        elif name not in ALLOWED_MAGICS:
            findings.append(f"the magic %{name}")
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return findings                   # it fails in the kernel and the verification run alike
    magic_lines = {n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
                   and _dotted(n.func).startswith("get_ipython().")} if "get_ipython" not in code else set()
    if magic_lines:
        findings += _magic_code_findings(tree, library_names)
    modules = set(library_names)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
    _aliases(tree, modules)
    spellings = {name: _spellings(tree, name) for name in ("sys", "os")}
    membership = _membership_tests(tree, spellings["sys"])
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if line in magic_lines or node in membership:
            continue
        for finding in _findings(node, modules, spellings):
            findings.append(f"line {line}: {finding}")
    return sorted(set(findings), key=lambda f: (int(re.match(r"line (\d+)", f).group(1))
                                                if f.startswith("line ") else 0, f))


def _magic_code_findings(tree: ast.Module, library_names: set[str]) -> list[str]:
    """Findings in the code that %time, %timeit, %%time, %%timeit and %%capture run (the runner's
    `Shell` runs it): IPython's transformation turns it into a string argument, which the scan of
    the cell itself does not read. Line numbers are the cell's: a line magic's own line; a cell
    magic's body from line 2, its %%timeit setup statement on line 1."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _dotted(node.func) in (
                "get_ipython().run_line_magic", "get_ipython().run_cell_magic")
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
            continue
        name, line, *cell = [a.value for a in node.args]
        parts = [(statement_of(name, line), lambda n, at=node.lineno: at)] if name in ("time", "timeit") else []
        if cell:
            parts.append((cell[0], lambda n, at=node.lineno: at + n))
        for code, where in parts:
            for finding in scan(code, library_names):
                number = re.match(r"line (\d+): (.*)", finding, re.S)
                found.append(f"line {where(int(number.group(1)))}: {number.group(2)}" if number else finding)
    return found


def _aliases(tree: ast.Module, modules: set[str]) -> None:
    """Names assigned from a module or library name (`t = torch`, `M = nn.Module`) count as one."""
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                root = _root(node.value)
                if root in modules and isinstance(node.value, (ast.Name, ast.Attribute)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name) and t.id not in modules:
                            modules.add(t.id)
                            changed = True


def _spellings(tree: ast.Module, module: str) -> set[str]:
    """The names `module` goes by in the cell: its own, `import sys as s`, `s2 = s` (or `s2 := s`)."""
    names = {module} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import)
                        for a in n.names if a.name == module and a.asname}
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) \
                    and isinstance(node.value, ast.Name) and node.value.id in names:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                new = {t.id for t in targets if isinstance(t, ast.Name)} - names
                names |= new
                changed = changed or bool(new)
    return names


def _membership_tests(tree: ast.Module, sys_names: set[str]) -> set[ast.AST]:
    """`sys.modules` nodes that only test membership (`"google.colab" in sys.modules`, as the setup
    cell does): a dict lookup of a name, which neither returns a module nor changes anything."""
    return {right for node in ast.walk(tree) if isinstance(node, ast.Compare)
            for op, right in zip(node.ops, node.comparators)
            if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, ast.Attribute)
            and right.attr == "modules" and isinstance(right.value, ast.Name) and right.value.id in sys_names}


def _findings(node: ast.AST, modules: set[str], spellings: dict[str, set[str]]) -> list[str]:
    found = []
    if isinstance(node, ast.Name) and node.id in REFLECTIVE_NAMES:
        found.append(f"uses {node.id}")
    elif isinstance(node, ast.Global) and modules.intersection(node.names):
        # `global torch; torch = ...` inside a function the tests call rebinds the name for the
        # course's own helpers while a test runs (the runner restores it only after student cells)
        found.append(f"rebinds {', '.join(sorted(modules.intersection(node.names)))} from inside a function (global)")
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        for name in names:
            top = name.split(".")[0]
            if name in ALLOWED_SUBMODULES or (isinstance(node, ast.ImportFrom) and name == "IPython"
                                              and all(a.name == "display" for a in node.names)):
                continue
            if top in FORBIDDEN_MODULES or top == "IPython":
                found.append(f"imports {name}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("sys", "os"):
            for alias in node.names:
                if (node.module == "sys" and alias.name not in ALLOWED_SYS) or \
                        (node.module == "os" and FORBIDDEN_OS.match(alias.name)):
                    found.append(f"imports {node.module}.{alias.name}")
    elif isinstance(node, ast.Attribute):
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__") and attr not in ALLOWED_DUNDERS:
            found.append(f"reaches {attr}")
        elif FRAME_ATTRIBUTE_PATTERN.match(attr):
            found.append(f"reaches {attr}")
        elif isinstance(node.value, ast.Name) and node.value.id in spellings["sys"] and attr not in ALLOWED_SYS:
            found.append(f"uses sys.{attr}")
        elif isinstance(node.value, ast.Name) and node.value.id in spellings["os"] and FORBIDDEN_OS.match(attr):
            found.append(f"uses os.{attr}")
        if attr == "__class__" and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.append("assigns __class__")
    elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for target in targets:
            for t in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                if isinstance(t, ast.Attribute) and _root(t) in modules and _dotted(t) not in ALLOWED_SETTINGS:
                    verb = "deletes" if isinstance(node, ast.Delete) else "assigns"
                    found.append(f"{verb} {_dotted(t)} (an attribute of a library)")
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, args = node.func.id, node.args
        if name in ("setattr", "delattr") and not (args and isinstance(args[0], ast.Name) and args[0].id == "self"):
            found.append(f"calls {name} on {ast.unparse(args[0]) if args else 'something'}")
        elif name == "getattr" and len(args) >= 2:
            key = args[1]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if (key.value.startswith("__") and key.value not in ALLOWED_DUNDERS) or FRAME_ATTRIBUTE_PATTERN.match(key.value):
                    found.append(f"reaches {key.value} through getattr")
            elif not (isinstance(key, ast.JoinedStr) and key.values and isinstance(key.values[0], ast.Constant)
                      and str(key.values[0].value)[:1].isalpha()) and _root(args[0]) in modules:
                found.append(f"calls getattr on {ast.unparse(args[0])} with a computed name")
    elif isinstance(node, ast.ClassDef):
        bases = {_dotted(b) for b in node.bases}
        if bases & {"torch.Tensor", "Tensor", "torch.nn.Parameter", "nn.Parameter", "np.ndarray", "numpy.ndarray"}:
            found.append(f"class {node.name} subclasses {', '.join(sorted(bases))} (results could be forged)")
        methods = {b.name for b in node.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if methods & TORCH_OVERRIDES:
            found.append(f"class {node.name} defines {', '.join(sorted(methods & TORCH_OVERRIDES))}")
    return found


def _root(node: ast.AST) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:
        return ""


def library_names(cells_code: list[str]) -> set[str]:
    """Names the course's own cells bind by importing (torch, nn, F, np, DataLoader, ...)."""
    names = set()
    for code in cells_code:
        try:
            tree = ast.parse(transform_magics(code))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    return names
