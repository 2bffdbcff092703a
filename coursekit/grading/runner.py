"""The verification run (the trusted side of grading): every graded test re-run in full, outside the
student's kernel, in a plain Python process forked from the zygote and sandboxed like the kernel.

It reads its job (the cells to run and an HMAC key) from stdin before any student code runs, and
writes its verdicts, one authenticated line each, to file descriptor 3. Student code runs in it
too (answer cells, added cells, and whenever a test calls the student's functions), so it defends
itself; autograder/SECURITY.md lists every defence and what remains possible:

- no IPython: no input transformers, events or display hooks to hook;
- the tests' code is compiled before any student code runs and executed in a copy of the
  notebook's namespace, with every name a teaching cell bound restored and a private copy of the
  builtins: names a test defines never reach student code, and a student cell that shadows
  `roc_auc_score` or `test_loader`, or replaces `builtins.isinstance`, changes nothing a test sees;
- an audit hook, armed before the first student cell, refuses tracing and profiling, frame and
  code-object access, `gc`'s object walks, ctypes, processes, sockets, new audit hooks, code
  compiled or functions created by student code, rewriting functions' code or defaults, and reads
  of process memory; signal handlers and new threads are refused too. Every refusal is reported;
- an integrity check after every student cell and at the end: library modules' and classes'
  attributes unchanged, teaching code and data unchanged, no trace or profile function, no extra
  thread;
- the runner's own code runs on a private copy of its globals and builtins, so replacing a module
  attribute cannot change what it does, and its verdicts are written with primitives taken before
  student code ran, each line authenticated with a key student code cannot reach.
"""

from __future__ import annotations

import builtins
import functools
import json
import operator
import os
import sys
import types

RUNNER_FILE = os.path.abspath(__file__)
STUDENT_KINDS = ("answer", "extra")
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_code", "gi_code",
                              "cr_code", "ag_code", "__code__"})
REFUSED_EVENTS = frozenset({
    "sys.settrace", "sys.setprofile", "sys._current_frames", "sys.addaudithook",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "subprocess.Popen", "os.system",
    "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "sys.remote_exec",
    "cpython.remove_audit_hooks", "coursekit.refused"})
REFUSED_PREFIXES = ("ctypes.", "socket.", "os.exec", "os.spawn", "os.posix_spawn", "_winapi.")
STUDENT_ONLY_EVENTS = frozenset({"compile", "exec", "function.__new__", "code.__new__"})
GUARDED_ATTRIBUTES = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__class__"})
PROC_SECRETS = ("/mem", "/environ", "/maps", "/pagemap", "/syscall", "/stack", "/fd/", "/fdinfo")
# The only library code allowed to obtain frame objects once student code runs: functions that read
# a module name or build text summaries from frames and hand no frame to their caller, and frame
# generators only while traceback's own summary code consumes them. (file, function): consumers.
FRAME_ACQUIRERS = {
    ("collections/__init__.py", "namedtuple"): None, ("typing.py", "_caller"): None,
    ("typing_extensions.py", "_caller"): None, ("typing_extensions.py", "_has_generic_or_protocol_as_origin"): None,
    ("enum.py", "_create_"): None, ("traceback.py", "extract_stack"): None,
    ("traceback.py", "format_stack"): None, ("traceback.py", "print_stack"): None,
    ("traceback.py", "clear_frames"): None,
    ("traceback.py", "walk_stack"): {("traceback.py", "_extract_from_extended_frame_gen")},
    ("traceback.py", "walk_tb"): {("traceback.py", "_extract_from_extended_frame_gen")},
    ("traceback.py", "_walk_tb_with_full_positions"): {("traceback.py", "_extract_from_extended_frame_gen")},
    ("logging/__init__.py", "<lambda>"): {("logging/__init__.py", "findCaller")},
    ("inspect.py", "currentframe"): {("torch/fx/_symbolic_trace.py", "wrap")},
}
# Library functions that read a function's code object only for its flags or parameters.
INSPECT = os.path.join(os.path.dirname(os.__file__), "inspect.py")
CODE_READERS = [(INSPECT, name) for name in ("_has_code_flag", "_signature_from_function",
                                             "_signature_from_callable", "getfullargspec", "signature")]
# Attributes libraries set themselves after import, on first use: pyplot its backend, pydoc its pager
# (at the first help()), the profiler its CUPTI monitor.
VOLATILE = frozenset({("matplotlib.pyplot", "_backend_mod"), ("pydoc", "pager"),
                      ("torch.autograd.profiler", "_cupti_monitor_module")})
WATCHED_DATA = ("Tensor", "Parameter", "ndarray", "DataLoader", "TensorDataset")
MESSAGE_CAP = 600


LIBRARY_ROOTS = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


def filename_kind(filename: str) -> str:
    """'student', 'protected' (tests, the plan, this runner), 'teaching' or 'library' (the Python
    environment's own files; a module file the student wrote elsewhere counts as the student's)."""
    if filename.startswith(("<answer:", "<extra:")):
        return "student"
    if filename.startswith(("<test:", "<plan:")) or filename == RUNNER_FILE:
        return "protected"
    if filename.startswith("<instructor:"):
        return "teaching"           # trusted like the tests, but public: not protected as a target
    if filename.startswith(("<frozen", "<string>")) or filename.startswith(LIBRARY_ROOTS):
        return "library"
    return "student"


def install_guard():
    """Install the audit hook. Its state lives only in its closure, which nothing else references:
    returns (arm, take_refusals)."""
    getframe, kind_of, acquirers = sys._getframe, filename_kind, dict(FRAME_ACQUIRERS)
    code_readers = {(f, n) for f, n in CODE_READERS}
    armed, busy, refusals = [False], [False], []

    def refuse(what, frame=None):
        code = frame.f_code if frame is not None else None
        back = frame.f_back.f_code if frame is not None and frame.f_back is not None else None
        where = (f" (by {code.co_name} in {code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
                 f"{f', for {back.co_name} in ' + back.co_filename.rsplit('/', 1)[-1] if back else ''})"
                 if code else "")
        refusals.append(what + where)
        raise PermissionError(f"not allowed in the verification run: {what}")

    def place(frame):
        code = frame.f_code
        return code.co_filename, code.co_name

    def importing(frame):
        """Is this library frame part of importing a library module (its module-level code)?"""
        depth = 0
        while frame is not None and depth < 200:
            filename = frame.f_code.co_filename
            if filename == "<frozen importlib._bootstrap>":
                return True
            if kind_of(filename) != "library":        # student code in between: not an import
                return False
            frame, depth = frame.f_back, depth + 1
        return False

    def acquirer_allowed(frame):
        """May this (library) frame obtain a frame object? Only known consumers may."""
        filename, name = place(frame)
        for (suffix, function), consumers in acquirers.items():
            if name == function and filename.endswith(suffix):
                if consumers is None:
                    return True
                back = frame.f_back
                if back is None:
                    return False
                up_file, up_name = place(back)
                if up_name == "_extract_from_extended_frame_gen" and back.f_locals.get("capture_locals"):
                    return False                      # the frames' local variables: a test's values
                return any(up_name == c and up_file.endswith(f) for f, c in consumers)
        return False

    def watched(event, args):
        """Could the hook refuse this event from some caller? (Exactly the events the branches
        below act on; every other event is let through before any frame is looked at: torch
        raises `builtins.id` and the like by the thousand, and walking their stacks cost seconds.)"""
        if event in REFUSED_EVENTS or event in STUDENT_ONLY_EVENTS or event == "sys._getframe" \
                or event.startswith(REFUSED_PREFIXES):
            return True
        if event == "object.__getattr__":
            return len(args) == 2 and args[1] in FRAME_ATTRIBUTES
        if event == "object.__setattr__":
            return len(args) >= 2 and args[1] in GUARDED_ATTRIBUTES
        return event == "open"

    def hook(event, args):
        if not armed[0] or busy[0]:
            return
        busy[0] = True
        try:
            if not watched(event, args):
                return
            frame = getframe(1)                      # the code that caused the event
            caller = kind_of(frame.f_code.co_filename)
            if caller in ("protected", "teaching") or (caller == "library" and importing(frame)):
                return                                # trusted code, or a library being imported
            if event in REFUSED_EVENTS or event.startswith(REFUSED_PREFIXES):
                refuse(args[0] if event == "coursekit.refused" and args else event, frame)
            elif event in STUDENT_ONLY_EVENTS:
                if caller == "student":
                    refuse(f"{event} called by your code", frame)
            elif event == "sys._getframe":
                if caller == "student" or not acquirer_allowed(frame):
                    refuse("frame access (sys._getframe)", frame)
            elif event == "object.__getattr__" and len(args) == 2 and args[1] in FRAME_ATTRIBUTES:
                target, name = args
                if caller == "student":
                    refuse(f"access to {name}", frame)
                elif name in ("tb_frame", "gi_frame", "cr_frame", "ag_frame"):
                    if not acquirer_allowed(frame):
                        refuse(f"access to {name}", frame)
                else:                                 # f_code, gi_code, __code__, ...
                    code = target.f_code if name == "f_code" else getattr(target, name, None)
                    if code is not None and kind_of(code.co_filename) == "protected" \
                            and place(frame) not in code_readers and not frame.f_code.co_filename.endswith("traceback.py"):
                        refuse(f"access to {name} of the grader's code", frame)
            elif event == "object.__setattr__" and len(args) >= 2 and args[1] in GUARDED_ATTRIBUTES:
                if caller == "student" or args[1] == "__code__":
                    refuse(f"assignment to {args[1]}", frame)
            elif event == "open" and args and isinstance(args[0], (str, bytes)):
                path = args[0] if isinstance(args[0], str) else args[0].decode(errors="replace")
                if path.startswith("/proc/") and any(s in path for s in PROC_SECRETS):
                    refuse(f"reading {path}", frame)
        finally:
            busy[0] = False

    def arm():
        armed[0] = True

    def take_refusals():
        taken = list(refusals)
        del refusals[:]
        return taken

    sys.addaudithook(hook)
    return arm, take_refusals


def close_side_doors() -> None:
    """Signal handlers receive frames without an audit event; threads run beside the tests.
    The replacements only raise an audit event, which the hook refuses and reports."""
    import _signal
    import _thread
    import signal
    import threading
    for module in (signal, _signal):
        module.signal = functools.partial(sys.audit, "coursekit.refused", "signal handlers")
    for module, name in ((_thread, "start_new_thread"), (_thread, "start_new"),
                         (threading, "_start_new_thread")):
        if hasattr(module, name):
            setattr(module, name, functools.partial(sys.audit, "coursekit.refused", "threads"))
    # Python 3.13 starts threads with keyword arguments (handle=, daemon=), which sys.audit does not
    # take: a function that takes any arguments, compiled under a name the hook counts as the caller's
    # (not this runner's, whose own events it lets through), raises the same refusal.
    refuse_threads = refusal("threads")
    for module, name in ((_thread, "start_joinable_thread"), (threading, "_start_joinable_thread")):
        if hasattr(module, name):
            setattr(module, name, refuse_threads)


def guard_modules(modules: dict) -> None:
    """Library modules refuse assignments and deletions of their attributes by student code, however
    spelled (`torch.allclose = f`, `setattr(m, name, f)` through any alias): a patch applied and undone
    within one call of the student's code (while a test runs) leaves nothing for the integrity check
    after the cell to see. Library code, the import system and the grader's own code may still set them."""
    getframe, kind_of = sys._getframe, filename_kind
    refused = refusal("assignment to an attribute of a library module")
    set_attribute, delete_attribute = types.ModuleType.__setattr__, types.ModuleType.__delattr__

    class GuardedModule(types.ModuleType):
        __slots__ = ()

        def __setattr__(self, name, value):
            if kind_of(getframe(1).f_code.co_filename) == "student":
                refused()
            set_attribute(self, name, value)

        def __delattr__(self, name):
            if kind_of(getframe(1).f_code.co_filename) == "student":
                refused()
            delete_attribute(self, name)

    for module in list(modules.values()):
        if type(module) is types.ModuleType and module.__name__ not in ("__main__", "sys"):   # sys.stdout = ...
            try:
                module.__class__ = GuardedModule
            except TypeError:
                pass


def refusal(what: str):
    """A function that takes any arguments and raises the audit event the hook refuses as `what`."""
    scope = {"audit": sys.audit}
    exec(compile(f"def refused(*args, **kwargs):\n    audit('coursekit.refused', {what!r})\n",
                 "<coursekit refusal>", "exec"), scope)
    return scope["refused"]


# ---------------------------------------------------------------- integrity
def libraries_signature(modules: dict) -> dict:
    """Every attribute of every loaded module and of the classes they define (names and the objects
    themselves), with the dicts themselves, so later checks need no lookup that student code could
    redirect."""
    signature = {}
    for name, module in list(modules.items()):
        space = getattr(module, "__dict__", None)
        if type(space) is not dict or name in ("__main__", "__mp_main__"):
            continue
        signature[name] = (space, tuple(space), tuple(space.values()))
        for value in list(space.values()):
            if type(value) is type and value.__module__ == name:
                attrs = value.__dict__
                signature[(name, value.__qualname__)] = (attrs, tuple(attrs), tuple(attrs.values()))
    return signature


def library_changes(before: dict, same=operator.is_) -> list[str]:
    """Callables, classes and modules replaced or deleted in a library since `before`.

    The fast path compares by identity (`operator.is_`, never `==`, which a replacement's `__eq__`
    could answer) and without `id()`: every `id()` call is an audit event, and with ~300,000
    attributes loaded, calling the armed hook for each made this check take 0.47 s instead of 0.05 s,
    after every student cell."""
    changed = []
    for key, (space, names, values) in before.items():
        if len(space) >= len(names) and all(map(same, space.values(), values)) and all(map(same, space, names)):
            continue                                  # nothing replaced or deleted (new names may follow)
        label = key if type(key) is str else ".".join(key)
        for attr, old in zip(names, values):
            if (key, attr) in VOLATILE:
                continue
            if attr not in space:
                changed.append(f"{label}.{attr} deleted")
                continue
            new = space[attr]
            if new is not old and (callable(new) or isinstance(new, types.ModuleType)) \
                    and not library_wrapper(new, old):
                changed.append(f"{label}.{attr} replaced")
    return changed


def library_wrapper(new, old) -> bool:
    """Libraries wrap some of their own functions lazily (torch wraps an optimizer class's `step`
    when the first instance is made): a wrapper written in a library, around the very object that
    was there, is not a patch."""
    code = getattr(new, "__code__", None)
    return (getattr(new, "__wrapped__", None) is old and code is not None
            and filename_kind(code.co_filename) == "library" and not code.co_filename.startswith("<"))


def torch_state() -> list[str]:
    """Global torch state that would change what every later torch call does: function and
    dispatch modes, global module hooks."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    problems = []
    if torch._C._len_torch_function_stack() != 0:
        problems.append("a torch function mode is active")
    dispatch = sys.modules.get("torch.utils._python_dispatch")
    if dispatch is not None and dispatch._len_torch_dispatch_stack() != 0:
        problems.append("a torch dispatch mode is active")
    module = sys.modules.get("torch.nn.modules.module")
    if module is not None:
        hooks = [name for name, value in vars(module).items()
                 if name.startswith("_global_") and name.endswith("hooks") and len(value)]
        if hooks:
            problems.append(f"global module hooks registered ({', '.join(sorted(hooks))})")
    return problems


def forged_tensor_classes() -> list[str]:
    """Tensor subclasses whose `__torch_function__` or `__torch_dispatch__` is student code: every
    torch call on such a tensor (a parameter, a block's output) runs that code, which can answer
    `torch.allclose` with True however the class was made (`type(...)`, `as_subclass`); answers never
    need one. Library subclasses (nn.Parameter, FakeTensor, ...) are the environment's files."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found, seen, stack = [], set(), [torch.Tensor]
    while stack:
        cls = stack.pop()
        for sub in type.__subclasses__(cls):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            stack.append(sub)
            for name in ("__torch_function__", "__torch_dispatch__"):
                code = code_of(type.__dict__["__dict__"].__get__(sub).get(name))
                if code is not None and filename_kind(code.co_filename) == "student":
                    found.append(f"a tensor subclass with its own {name} ({type.__dict__['__name__'].__get__(sub)})")
    return found


def code_of(handler):
    """The code object a class attribute runs when called, read through the exact types of
    classmethod, staticmethod, bound method, functools.partial and callable objects (no attribute
    lookup that could run the student's code); None for builtins."""
    for _ in range(8):
        kind = type(handler)
        if kind is types.FunctionType:
            return types.FunctionType.__dict__["__code__"].__get__(handler)
        if kind in (classmethod, staticmethod):
            handler = kind.__dict__["__func__"].__get__(handler)
        elif kind is types.MethodType:
            handler = types.MethodType.__dict__["__func__"].__get__(handler)
        elif kind is functools.partial:
            handler = functools.partial.__dict__["func"].__get__(handler)
        elif handler is None or kind in (types.BuiltinFunctionType, types.MethodWrapperType,
                                         types.WrapperDescriptorType, types.MethodDescriptorType):
            return None
        else:                                          # an object: its class's __call__
            handler = type.__dict__["__dict__"].__get__(kind).get("__call__")
    return None


def fingerprint(value, deep: bool = True):
    """What must not change about an object a teaching cell made while student code runs:
    functions' code, defaults and closures, classes' attributes, tensors' and arrays' contents."""
    kind = type(value).__name__
    if isinstance(value, types.FunctionType):
        cells = tuple(id(c.cell_contents) for c in (value.__closure__ or ()) if has_contents(c))
        return ("function", id(value.__code__), id(value.__defaults__), id(value.__kwdefaults__), cells)
    if isinstance(value, type):
        return ("class", tuple(value.__dict__), tuple(map(id, value.__dict__.values())))
    if not deep:
        return None
    if kind in ("Tensor", "Parameter"):
        data = value.detach().cpu().contiguous()
        try:
            digest = contents_digest(data.numpy())
        except (TypeError, RuntimeError):
            digest = repr(float(data.double().sum()))
        return ("tensor", tuple(data.shape), str(data.dtype), digest)
    if kind == "ndarray":
        return ("array", value.shape, str(value.dtype), contents_digest(value))
    if kind == "DataLoader":
        return ("loader", fingerprint(value.dataset))
    if kind == "TensorDataset":
        return ("dataset", tuple(fingerprint(t) for t in value.tensors))
    return None


def contents_digest(array) -> str:
    """SHA-256 of an array's bytes, read in place where it is contiguous (no copy of the data; SHA-256
    has CPU instructions on the x86 and ARM machines graders run on: twice blake2b's speed, which took
    0.6 s of a Notebook 2 verification run re-hashing the teaching data after every student cell)."""
    import hashlib

    try:
        return hashlib.sha256(memoryview(array).cast("B")).hexdigest()
    except (TypeError, ValueError):            # not contiguous, or a format memoryview cannot cast
        return hashlib.sha256(array.tobytes()).hexdigest()


def has_contents(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- stand-ins for IPython
def statement_of(name, line):
    """The statement of `%time stmt` or `%timeit [-n 10 -r 3 -o ...] stmt`, its options dropped."""
    while name == "timeit" and line.lstrip().startswith("-"):
        option, _, line = line.lstrip().partition(" ")
        if option in ("-n", "-r", "-p"):               # a value follows, after a space
            _, _, line = line.lstrip().partition(" ")
    return line


class Shell:
    """`get_ipython()` for the magics a notebook may use (`plan.as_python` turns them into calls of
    it): %time, %timeit and %%capture run their code once; %matplotlib, %config, %pip and the like
    change nothing the checks see."""

    def __init__(self, namespace):
        self._namespace = namespace

    def run_line_magic(self, name, line):
        if name in ("time", "timeit"):
            self._run(name, statement_of(name, line))
        elif name not in ("matplotlib", "pip", "config", "load_ext", "autoreload", "pinfo", "pinfo2"):
            raise RuntimeError(f"the magic %{name} is not available in the verification run")

    def run_cell_magic(self, name, line, cell):
        if name == "timeit" and statement_of(name, line).strip():
            cell = statement_of(name, line) + "\n" + cell      # %%timeit's setup statement, then the body
        if name not in ("time", "timeit", "capture"):
            raise RuntimeError(f"the cell magic %%{name} is not available in the verification run")
        self._run(name, cell)

    def _run(self, name, code):
        """As IPython runs them: %time and %%capture in the notebook's namespace; %timeit's code in a
        scope of its own (what it binds does not stay), once instead of many times."""
        scope = {} if name == "timeit" else self._namespace
        exec(compile(code, "<extra:magic>", "exec", dont_inherit=True), self._namespace, scope)

    def system(self, command):
        raise RuntimeError("shell commands are not available in the verification run")

    getoutput = system


# ---------------------------------------------------------------- the run
def main() -> int:
    """Entry point in the sandboxed process (see zygote.py): read the job, run it privately."""
    job = json.loads(sys.stdin.read())
    os.close(0)
    send = channel(bytes.fromhex(job.pop("key")), job.get("result_fd", 3))
    send("begin")
    private = private_globals()
    try:
        return private["run"](job, send)
    except BaseException as err:                      # a fault of the runner itself
        send("fault", type(err).__name__, str(err)[:MESSAGE_CAP])
        return 1


def private_globals() -> dict:
    """A copy of this module's globals, with its functions re-bound to the copy and a copy of the
    builtins: what the runner calls cannot be redirected through this module or `builtins`."""
    private = dict(globals())
    private["__builtins__"] = dict(vars(builtins))
    for name, value in list(private.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == __name__:
            private[name] = types.FunctionType(value.__code__, private, value.__name__,
                                               value.__defaults__, value.__closure__)
    return private


def channel(key: bytes, fd: int):
    """`send(*fields)`: one authenticated line on `fd`, built only from C-level primitives taken
    now (student code replacing json, hmac, os.write or builtins later changes nothing here)."""
    import _hashlib
    mac, write, quote, join = _hashlib.hmac_digest, os.write, str.__repr__, "\t".join
    counter = [0]

    def send(*fields):
        counter[0] += 1
        body = "%d\t%s" % (counter[0], join([quote(f if type(f) is str else "%r" % (f,)) for f in fields]))
        line = body + "\t" + mac(key, body.encode("utf-8", "backslashreplace"), "sha256").hex() + "\n"
        try:
            write(fd, line.encode("utf-8", "backslashreplace"))
        except OSError:
            pass
    return send


def run(job: dict, send) -> int:
    import threading
    import time

    for name in job.get("preload", []):              # everything the course's cells import
        try:
            __import__(name)
        except Exception:
            pass
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    if "tqdm" in sys.modules:
        sys.modules["tqdm"].tqdm.monitor_interval = 0  # no monitor thread
    cells = job["cells"]
    codes = {}
    for cell in cells:                                # compiled before any student code runs
        if cell["kind"] in ("instructor", "answer", "extra", "test"):
            try:
                codes[cell["id"]] = compile(cell["code"], f"<{cell['kind']}:{cell['id']}>", "exec", dont_inherit=True)
            except SyntaxError as err:
                codes[cell["id"]] = err
            cell["code"] = ""                         # the text is not kept
        for name, spec in cell.get("artefacts", {}).items():
            if isinstance(spec, dict) and "module" in spec:
                codes[(cell["id"], name)] = compile(spec["module"], f"<plan:{cell['id']}>", "eval", dont_inherit=True)

    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": lambda *a, **k: None}
    namespace["get_ipython"] = functools.partial(Shell, namespace)
    clock, gettrace, getprofile, threads = time.perf_counter, sys.gettrace, sys.getprofile, threading.active_count
    args_of = BaseException.__dict__["args"].__get__
    traceback_of = BaseException.__dict__["__traceback__"].__get__
    builtin_errors = {v: k for k, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
    owned = {name for cell in cells for name in cell.get("owns", [])}
    taught: dict = {}                                 # names teaching cells bound, and their objects
    marks: dict = {}                                  # fingerprints of what they bound
    arm, take_refusals = install_guard()
    libraries = pristine = None
    forged: set = set()                               # forged tensor classes reported so far

    def check(where: str) -> None:
        problems = [f"refused {r}" for r in take_refusals()]
        problems += library_changes(libraries)
        problems += [f"the teaching cells' {name} was changed" for name, mark in marks.items()
                     if fingerprint(taught[name]) != mark]
        if gettrace() is not None or getprofile() is not None:
            problems.append("a trace or profile function is set")
        problems += torch_state() + new_forgeries()
        if threads() != 1:
            problems.append(f"{threads() - 1} extra thread(s) running")
        for problem in problems[:20]:
            send("integrity", where, problem)

    def new_forgeries() -> list[str]:
        """Forged tensor classes not reported before (each is reported once, where first seen)."""
        found = [f for f in forged_tensor_classes() if f not in forged]
        forged.update(found)
        return found

    def describe(err):
        """(exception name, message) without running any of the exception's own code."""
        args = args_of(err)
        text = args[0] if args and type(args[0]) is str else ""
        return builtin_errors.get(type(err), "an exception of your code's own class"), text[:MESSAGE_CAP]

    def failing_line(err) -> int:
        tb = traceback_of(err)
        tb = tb.tb_next if tb is not None else None      # the first entry is this frame
        return tb.tb_lineno if tb is not None else 0

    def remember(names) -> None:
        """Teaching cells' bindings, and marks of what they defined or computed (imported library
        objects are the library check's business)."""
        for name in names:
            value = taught[name] = namespace[name]
            defined_here = (isinstance(value, types.FunctionType) and value.__code__.co_filename.startswith("<instructor:")) \
                or (isinstance(value, type) and value.__module__ == "__main__")
            if defined_here or type(value).__name__ in WATCHED_DATA:
                marks[name] = fingerprint(value)

    for cell in cells:
        kind, cid = cell["kind"], cell["id"]
        if kind == "skip":
            continue
        if kind in STUDENT_KINDS and libraries is None:
            close_side_doors()
            libraries = libraries_signature(sys.modules)
            guard_modules(sys.modules)
            pristine = dict(vars(builtins))
            arm()
        send("start", cid, kind)
        started = clock()
        if kind == "test":
            scope = dict(namespace)
            scope.update(taught)
            if pristine is not None:
                scope["__builtins__"] = dict(pristine)
            code = codes[cid]
            try:
                if isinstance(code, SyntaxError):
                    raise code
                exec(code, scope)
            except BaseException as err:
                name, text = describe(err)
                send("test", cid, "fail", failing_line(err), name, text, "%.3f" % (clock() - started))
            else:
                send("test", cid, "pass", 0, "", "", "%.3f" % (clock() - started))
            del scope
            if libraries is not None:                   # made while a test ran the student's code
                for problem in new_forgeries()[:20]:
                    send("integrity", cid, problem)
            for name, mark in list(marks.items()):      # tests may change teaching objects
                marks[name] = fingerprint(taught[name], deep=False) or mark
            continue
        if kind == "artefact":
            status, restored = restore(cell, codes, namespace, job.get("artefact_dir", "artefacts"))
            send("cell", cid, status, "%.3f" % (clock() - started))
            if not cell.get("owns"):                    # a teaching cell's artefacts
                remember(restored)
            if libraries is not None:
                check(cid)
            continue
        before = dict(namespace)
        code = codes[cid]
        try:
            if isinstance(code, SyntaxError):
                raise code
            exec(code, namespace)
            status = "ok"
        except BaseException as err:
            status = "error: " + describe(err)[0]
        send("cell", cid, status, "%.3f" % (clock() - started))
        if kind == "instructor":
            remember([n for n, v in namespace.items() if n not in owned and (n not in before or before[n] is not v)])
        else:
            for name in [n for n, v in taught.items() if namespace.get(n, taught) is not v]:
                namespace[name] = taught[name]            # shadowed or deleted: restored
            check(cid)
    if libraries is not None:
        check("end")
    send("done")
    return 0


def restore(cell: dict, codes: dict, namespace: dict, folder: str) -> tuple[str, list[str]]:
    """Put back what a training cell produced in the kernel: its exported weights (loaded into the
    model its metadata builds) and JSON data. Untrusted data, read without pickle."""
    import torch
    from safetensors.torch import load_file

    base = os.path.join(folder, cell["id"])
    for name in cell["artefacts"]:
        namespace.pop(name, None)
    try:
        with open(os.path.join(base, "manifest.json"), "rb") as f:
            manifest = json.loads(f.read(2**20))
        assert isinstance(manifest, dict)
    except (OSError, ValueError, AssertionError):
        return "missing: the kernel exported nothing", []
    missing, restored = [], []
    for name, spec in cell["artefacts"].items():
        entry = manifest.get(name)
        try:
            if not isinstance(entry, dict) or entry.get("kind") not in ("module", "json"):
                raise ValueError("not exported")
            if entry["kind"] == "module":
                model = eval(codes[(cell["id"], name)], namespace)
                model.load_state_dict(load_file(os.path.join(base, name + ".safetensors")), strict=True)
                devices = entry.get("devices") or ["cpu"]
                if devices == ["cuda"] and torch.cuda.is_available():
                    model.to("cuda")
                elif devices != ["cpu"]:
                    raise ValueError(f"parameters on {devices}")
                model.train(bool(entry.get("training")))
                namespace[name] = model
            else:
                with open(os.path.join(base, name + ".json"), "rb") as f:
                    namespace[name] = json.loads(f.read(64 * 2**20))
            restored.append(name)
        except Exception as err:
            missing.append(f"{name} ({type(err).__name__})")
    return ("ok" if not missing else "missing: " + ", ".join(missing)), restored
