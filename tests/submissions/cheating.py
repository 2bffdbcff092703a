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
                              Honest("honest_one_epoch", "pneumonia_training", None)]}
