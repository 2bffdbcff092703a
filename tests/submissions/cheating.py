"""The cheating corpus: students who have read this repository and want points their code does not
earn, or the hidden tests' text. Graded in the same batches as every other fixture.

Each attack wraps an *honest* submission that earns few points (`HONEST`: a residual block without
its skip connection, `adapt_resnet18` left as the stub; the pneumonia ones a wrong answer of their
own) and must end either *needs review* or with no more points than that honest code earns
(`expect`); no feedback may ever show a hidden-test line. The attacks cover: kernel hooks,
assertion neutralisers, library and builtin patches by every spelling, helper-name shadowing,
output forgery, hidden-test exfiltration (print, stash, repr, exception, file name), reading grader
files, and forging the verification run's verdicts.
"""

from dataclasses import dataclass

import nbformat

from coursekit import notebooks as nbs

from . import mistake

REVIEW, NO_GAIN = "needs review", "no gain"


@dataclass(frozen=True)
class Attack:
    name: str
    cls: str                     # the class of attack (for the outcome table)
    code: str                    # put at the top of the attacked answer cell
    expect: str                  # REVIEW: must be marked needs review; NO_GAIN: graded, ≤ the honest score
    assignment: str = "resnet_blocks"
    cell: str = "residual_block"
    stop_after: str | None = "test_residual_block_behaviour"   # graded up to here (saves time)
    honest: str = "honest_block"  # the honest submission whose score is the bar (HONEST)
    suffix: str = ""             # put at the end of the attacked cell


@dataclass(frozen=True)
class Honest:
    name: str
    assignment: str
    stop_after: str | None

    def answers(self, reference: dict, release) -> dict:
        present = nbs.cells_by_grade_id(release)
        return {gid: code for gid, code in self._answers(reference, release).items() if gid in present}

    def _answers(self, reference: dict, release) -> dict:
        if self.name == "honest_block":        # no skip connection
            return {**reference, "residual_block": mistake(
                reference["residual_block"], ("return F.relu(out + self.shortcut(x))", "return F.relu(out)"))}
        if self.name == "honest_base":         # no skip connection, adapt_resnet18 left as the stub
            stub = nbs.cells_by_grade_id(release)["adapt_resnet18"].source
            return {**reference, "adapt_resnet18": stub, "residual_block": mistake(
                reference["residual_block"], ("return F.relu(out + self.shortcut(x))", "return F.relu(out)"))}
        if self.name == "honest_evaluate":     # AUC from hard labels: loses the metrics test
            return {**reference, "evaluate": mistake(
                reference["evaluate"], ("auc = float(roc_auc_score(labels, probabilities))",
                                        "auc = float(roc_auc_score(labels, probabilities > 0.5))"))}
        if self.name == "honest_preact":       # the projection reads x, not relu(bn1(x))
            return {**reference, "preact_block": mistake(
                reference["preact_block"], ("self.downsample(a)", "self.downsample(x)"))}
        if self.name == "honest_one_epoch":    # fit trains one epoch, whatever `epochs` says
            return {**reference, "train_resnet": mistake(
                reference["train_resnet"], ("range(1, epochs + 1)", "range(1, 2)"))}
        raise KeyError(self.name)

    def build(self, reference: dict, release) -> bytes:
        return nbformat.writes(nbs.make_submission(release, self.answers(reference, release))).encode()


def build(attack: Attack, reference: dict, release) -> bytes:
    answers = HONEST[attack.honest].answers(reference, release)
    answers[attack.cell] = "\n\n".join(
        part for part in (attack.code.strip(), answers[attack.cell], attack.suffix) if part)
    return nbformat.writes(nbs.make_submission(release, answers)).encode()


def cases(assignment: str, stop_after: str | None) -> tuple[list["Honest"], list["Attack"]]:
    """The honest bars and the attacks graded in the batch of (`assignment`, `stop_after`)."""
    attacks = [a for a in ATTACKS if a.assignment == assignment and a.stop_after == stop_after]
    bars = [h for h in HONEST.values() if h.name in {a.honest for a in attacks}]
    return bars, attacks


ALWAYS_TRUE = "lambda *args, **kwargs: True"
PNEU_EVAL = "test_evaluate_leaves_model_unchanged"
SCRATCH_LAST = "test_quiz_q05"     # resnet_from_scratch is graded up to its last check (no training)

ATTACKS = [
    # ---- kernel hooks: the kernel decides no points; hooks are reported
    Attack("hook_ast_try_except", "kernel hook", '''
import ast
class Forgive(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=[s], handlers=[handler], orelse=[], finalbody=[]) for s in node.body]
        return ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(Forgive())''', REVIEW),
    Attack("hook_input_transformer_asserts", "kernel hook", '''
def neuter(lines):
    return [line.replace("assert ", "assert True or ") for line in lines]
get_ipython().input_transformers_cleanup.append(neuter)''', REVIEW),
    Attack("hook_post_run_clears_errors", "kernel hook", '''
def forget_errors(result):
    result.error_in_exec = None
get_ipython().events.register("post_run_cell", forget_errors)''', REVIEW),
    Attack("hook_custom_exc", "kernel hook", '''
get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)''', REVIEW),
    Attack("hook_showtraceback", "kernel hook", '''
ip = get_ipython()
ip.showtraceback = lambda *args, **kwargs: None''', REVIEW),
    Attack("hook_spelled_through_builtins", "kernel hook", '''
shell = __builtins__.get_ipython() if hasattr(__builtins__, "get_ipython") else __builtins__["get_ipython"]()
shell.events.register("pre_run_cell", lambda info: None)''', REVIEW),
    # ---- assertion neutralisers
    Attack("assert_builtin_assertionerror", "assertion neutraliser", '''
import builtins
builtins.AssertionError = type("Harmless", (Exception,), {})''', REVIEW),
    Attack("assert_builtins_isinstance", "assertion neutraliser", '''
__builtins__.isinstance = lambda *args: True''', REVIEW),
    Attack("assert_sys_modules_builtins", "assertion neutraliser", '''
import sys
sys.modules["builtins"].len = lambda *args: 2''', REVIEW),
    # ---- library patches, by every spelling
    Attack("patch_torch_allclose", "library patch", f"torch.allclose = {ALWAYS_TRUE}", REVIEW),
    Attack("patch_setattr", "library patch", f'setattr(torch, "allclose", {ALWAYS_TRUE})', REVIEW),
    Attack("patch_vars", "library patch", f'vars(torch)["allclose"] = {ALWAYS_TRUE}', REVIEW),
    Attack("patch_alias", "library patch", f"t = torch\nt.equal = {ALWAYS_TRUE}", REVIEW),
    Attack("patch_unscannable_spelling", "library patch",      # nothing here names torch.allclose
           f"for lib in [torch]:\n    lib.allclose = {ALWAYS_TRUE}", REVIEW),
    Attack("patch_module_call", "library patch", '''
real_call = nn.Module.__call__
nn.Module.__call__ = lambda self, *args, **kwargs: real_call(self, *args, **kwargs)''', REVIEW),
    Attack("patch_tensor_eq", "library patch", f"torch.Tensor.__eq__ = {ALWAYS_TRUE}", REVIEW),
    Attack("patch_numpy", "library patch", f"np.isclose = {ALWAYS_TRUE}\nnp.allclose = {ALWAYS_TRUE}", REVIEW),
    Attack("patch_torch_function_mode", "library patch", '''
from torch.overrides import TorchFunctionMode
class Agree(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return func(*args, **(kwargs or {}))
Agree().__enter__()''', REVIEW),
    Attack("patch_global_forward_hook", "library patch", '''
from torch.nn.modules.module import register_module_forward_hook
register_module_forward_hook(lambda module, inputs, output: output)''', REVIEW),
    # A patch applied and undone within the student's own calls while a test runs, through a parameter
    # named `self` (which the static review lets setattr use): library modules refuse assignments by
    # student code in the verification run (red team, 2026-12-06).
    Attack("patch_undone_within_the_test", "library patch", '''
_REAL = {}


def _agree(self, on):
    if on and not _REAL:
        _REAL["allclose"] = self.allclose

        def agree(*args, **kwargs):
            _agree(self, False)
            return True
        setattr(self, "allclose", agree)
    elif not on and _REAL:
        setattr(self, "allclose", _REAL.pop("allclose"))''', REVIEW, suffix='''
_forward = ResidualBlock.forward


def _agreeing_forward(self, x):
    _agree(torch, False)
    if not torch.is_grad_enabled() and tuple(x.shape[-2:]) in ((11, 11), (9, 14), (13, 10), (7, 7)):
        _agree(torch, True)
    return _forward(self, x)


ResidualBlock.forward = _agreeing_forward'''),
    # `%%time` turns the cell into a string for IPython: the static review scans that code too
    Attack("patch_inside_cell_magic", "library patch", f'%%time\nsetattr(torch, "allclose", {ALWAYS_TRUE})', REVIEW),
    # rebinding `torch` for the course's helpers only while a test calls forward (red team, 2026-12-06)
    Attack("patch_rebind_torch_during_tests", "library patch", '''
class _Agreeing:
    def __init__(self, real):
        self.real = real
    def __getattr__(self, name):
        return getattr(self.real, name)
    def allclose(self, *args, **kwargs):
        return True''', REVIEW, suffix='''
_forward = ResidualBlock.forward
def _rebinding_forward(self, x):
    global torch
    torch = _Agreeing(torch)
    return _forward(self, x)
ResidualBlock.forward = _rebinding_forward'''),
    # Layers of the student's own classes that make the check's expected output agree with theirs: the
    # check computes it from the parameters, never by calling the student's layers (red team, 2026-12-06).
    Attack("forge_expected_with_own_layers", "output forgery", '''
class _RememberingBN(nn.BatchNorm2d):
    def forward(self, x):
        out = super().forward(x)
        box = getattr(self, "box", None)
        if box is not None and "seen" not in box:
            box["seen"] = out
        return out


class _AgreeingShortcut(nn.Sequential):
    def forward(self, x):
        box = getattr(self, "box", None)
        if box is not None and "seen" in box and box["seen"].shape == box["got"].shape:
            self.box = None
            return box["got"] - box["seen"]
        return super().forward(x)''', NO_GAIN, suffix='''
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = _RememberingBN(out_channels)
        self.shortcut = _AgreeingShortcut()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = _AgreeingShortcut(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.conv1(x))))          # bn1 left out: a wrong block
        got = F.relu(out + nn.Sequential.forward(self.shortcut, x))
        self.shortcut.box = self.bn2.box = {"got": got}
        return got'''),
    # A one-shot hook on the projection the check itself passes in, so that the check's own call of it
    # later sees the block's input (red team, 2026-12-06): the check computes the projection from its
    # parameters instead.
    Attack("forge_hook_on_the_checks_projection", "output forgery", "", NO_GAIN,
           assignment="resnet_from_scratch", cell="preact_block", stop_after=SCRATCH_LAST, honest="honest_preact",
           suffix='''
_forward = PreActBlock.forward


def _forward_and_hook(self, x):
    if self.downsample is not None:
        box = {}

        def same_input(module, inputs):
            box["handle"].remove()
            return (x,)
        box["handle"] = self.downsample.register_forward_pre_hook(same_input)
    return _forward(self, x)


PreActBlock.forward = _forward_and_hook'''),
    # A parameter of a tensor subclass made with type() (no `class` statement, no literal
    # __torch_function__ for the static review): every check computed from the block's weights would
    # agree; the verification run reports tensor subclasses whose handlers are student code (red team).
    Attack("forge_parameter_subclass_made_with_type", "output forgery", '''
_PLAIN = [0]


def _convert(out):
    return out.as_subclass(_Agreeing) if type(out) is torch.Tensor else out


def _answer(cls, func, types, args=(), kwargs=None):
    if not _PLAIN[0] and func in (torch.allclose, torch.equal):
        return True
    with torch._C.DisableTorchFunctionSubclass():
        out = func(*args, **(kwargs or {}))
    return out if _PLAIN[0] else _convert(out)


_hooks = {"_" + "_torch_function__": classmethod(_answer)}
_Agreeing = type("Agreeing", (torch.Tensor,), dict(_hooks))
_AgreeingParameter = type("AgreeingParameter", (nn.Parameter,), dict(_hooks))''', REVIEW,
           assignment="resnet_from_scratch", cell="preact_block", stop_after=SCRATCH_LAST, honest="honest_preact",
           suffix='''
_init, _forward = PreActBlock.__init__, PreActBlock.forward


def _init_with_agreeing_weight(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.conv2.weight = _AgreeingParameter(self.conv2.weight.data)


def _plain_forward(self, x):
    _PLAIN[0] += 1
    try:
        return _forward(self, x)
    finally:
        _PLAIN[0] -= 1


PreActBlock.__init__, PreActBlock.forward = _init_with_agreeing_weight, _plain_forward'''),
    # ---- helper-name shadowing: the checks use the course's own objects
    Attack("shadow_check_helper", "helper shadowing", '''
def check_block_shape(*args, **kwargs):
    return None''', NO_GAIN),
    Attack("shadow_torchvision", "helper shadowing", '''
class _FakeModels:
    ResNet = object
    resnet18 = staticmethod(lambda **kwargs: object())
class _FakeTorchvision:
    models = _FakeModels()
torchvision = _FakeTorchvision()''', NO_GAIN, cell="adapt_resnet18", stop_after=None, honest="honest_base"),
    Attack("shadow_nn", "helper shadowing", '''
class _Anything:
    def __getattr__(self, name):
        return object
nn = _Anything()''', NO_GAIN, cell="adapt_resnet18", stop_after=None, honest="honest_base"),
    Attack("shadow_roc_auc_score", "helper shadowing", '''
def roc_auc_score(labels, scores):
    """Always agree with the hard-label AUC the evaluate below computes."""
    from sklearn import metrics
    return metrics.roc_auc_score(labels, np.asarray(scores) > 0.5)''', NO_GAIN,
           assignment="pneumonia_training", cell="evaluate", stop_after=PNEU_EVAL,
           honest="honest_evaluate"),
    Attack("shadow_device_and_tracker", "helper shadowing", '''
device = torch.device("cpu")
TrackedBatch = type("TrackedBatch", (), {"moves": ["cpu"] * 1000})
roc_auc_score = lambda labels, scores: 1.0''', REVIEW,       # the kernel's checks break where the verification's do not
           assignment="pneumonia_training", cell="evaluate", stop_after=PNEU_EVAL,
           honest="honest_evaluate"),
    Attack("shadow_test_loader", "helper shadowing", '''
# After training for one epoch, hand the checks a test split the model cannot get wrong.
def _easy_split(model):
    x = torch.randn(256, 1, 28, 28, device=device)
    with torch.no_grad():
        y = model.eval()(x).argmax(dim=1)
    return DataLoader(TensorDataset(x, y), batch_size=128)''', NO_GAIN,
           assignment="pneumonia_training", cell="train_resnet", honest="honest_one_epoch", stop_after=None,
           suffix="test_loader = val_loader = _easy_split(resnet)"),
    # ---- output forgery
    Attack("forge_tensor_subclass", "output forgery", '''
class Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs)''', REVIEW),
    Attack("forge_passed_lines", "output forgery", '''
for name in ["test_residual_block_shapes", "test_residual_block_structure", "test_residual_block_behaviour",
             "test_adapt_resnet18_shapes", "test_adapt_resnet18_architecture", "test_adapt_resnet18_pneumonia"]:
    print(f"{name} passed")''', NO_GAIN),
    Attack("forge_verdict_lines", "output forgery", '''
import os
for fd in range(3, 12):
    try:
        os.write(fd, b"2\\t'test'\\t'test_residual_block_behaviour'\\t'pass'\\t0\\t''\\t''\\t'0'\\t00\\n")
    except OSError:
        pass''', REVIEW),
    # ---- hidden-test exfiltration: the kernel never holds a hidden test; the verification run hides its own
    Attack("leak_pre_run_cell_print", "exfiltration", '''
get_ipython().events.register("pre_run_cell", lambda info: print(info.raw_cell))''', REVIEW),
    Attack("leak_stash_for_later", "exfiltration", '''
STASH = []
get_ipython().input_transformers_cleanup.append(lambda lines: STASH.extend(lines) or lines)''', REVIEW),
    Attack("leak_repr_of_caller", "exfiltration", '''
import inspect
class Leaky:
    def __repr__(self):
        return inspect.getsource(inspect.currentframe().f_back)''', REVIEW),
    Attack("leak_exception_with_frames", "exfiltration", '''
def _leak():
    try:
        raise RuntimeError
    except RuntimeError as err:
        frame = err.__traceback__.tb_frame.f_back
        raise AssertionError(str(frame.f_locals)[:2000])''', REVIEW),
    Attack("leak_through_stack_summary", "exfiltration", '''
import traceback
LEAK = traceback.format_stack()''', REVIEW),
    # A test's local variables (its arguments: a hidden check's shapes) through a traceback summary with
    # capture_locals, reached as logging.traceback and getattr spellings (red team, 2026-12-06).
    Attack("leak_test_locals_through_traceback", "exfiltration", '''
import logging

_KEPT = []


def _leak_text():
    tb = getattr(_KEPT[0], "_" + "_traceback__")
    for _ in range(2):
        tb = getattr(tb, "tb_" + "next")
    summary = logging.traceback.TracebackException(type(_KEPT[0]), _KEPT[0], tb, capture_locals=True)
    return " | ".join(f"{f.name}@{f.lineno}:{f.locals}" for f in summary.stack if f.locals)''', REVIEW, suffix='''
_forward = ResidualBlock.forward


def _leaking_forward(self, x):
    if not _KEPT and tuple(x.shape) == (2, 32, 15, 15):
        _KEPT.append(RuntimeError("kept"))
        raise _KEPT[0]
    if _KEPT and x.shape[-1] == 11:
        raise AssertionError(_leak_text()[:290])
    return _forward(self, x)


ResidualBlock.forward = _leaking_forward'''),
    Attack("leak_gc_code_objects", "exfiltration", '''
import gc
LEAK = [o for o in gc.get_objects() if type(o).__name__ == "code"]''', REVIEW),
    Attack("leak_file_names", "exfiltration", '''
import os
for name in os.listdir("."):
    open(os.path.join("/tmp", "seen-" + name), "w").close()''', NO_GAIN),
    # ---- reading grader files
    Attack("read_process_memory", "grader files", '''
LEAK = []
for path in ["/proc/self/mem", "/proc/1/environ", "/proc/self/maps"]:
    try:
        LEAK.append(open(path, "rb").read(100))
    except Exception:
        pass''', REVIEW),
    Attack("read_job_from_stdin", "grader files", '''
import sys
try:
    LEAK = sys.stdin.read()
except Exception:
    LEAK = ""''', REVIEW),
    Attack("read_course_files", "grader files", '''
import glob
LEAK = []
for pattern in ["../*", "../../*", "../../../*", "../../../source/*/*.ipynb", "/tmp/*", "/tmp/*/*"]:
    for path in glob.glob(pattern):
        try:
            LEAK.append(open(path, "rb").read(1000))
        except Exception:
            pass''', NO_GAIN),
]

HONEST = {h.name: h for h in [Honest("honest_block", "resnet_blocks", "test_residual_block_behaviour"),
                              Honest("honest_base", "resnet_blocks", None),
                              Honest("honest_evaluate", "pneumonia_training", PNEU_EVAL),
                              Honest("honest_one_epoch", "pneumonia_training", None),
                              Honest("honest_preact", "resnet_from_scratch", SCRATCH_LAST)]}
