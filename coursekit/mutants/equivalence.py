"""Equivalence in this process: the reference's and a mutant's definitions run side by side on the
same inputs (modules compared under the reference's weights), a difference raised as NotEquivalent."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from contextlib import contextmanager


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
def deadline(seconds: int):
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


def same(a, b, what: str) -> None:
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
            same(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            raise NotEquivalent(f"{what}: {type(a).__name__} of {len(a)} vs {type(b).__name__} of {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{what}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if type(a) is not type(b) or not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) \
                and not (math.isnan(a) and math.isnan(b)):
            raise NotEquivalent(f"{what}: {a!r} vs {b!r}")
    elif a != b or type(a) is not type(b):
        raise NotEquivalent(f"{what}: {a!r} vs {b!r}")


def outcome(call):
    """('ok', value) or ('error', exception type name): two calls that fail alike behave alike."""
    try:
        return "ok", call()
    except (TimeoutError, NotEquivalent):
        raise
    except Exception as e:  # noqa: BLE001 (any error of the cell's code is an outcome to compare)
        return "error", type(e).__name__


def same_outcome(a, b, what: str) -> None:
    if a[0] != b[0] or (a[0] == "error" and a[1] != b[1]):
        raise NotEquivalent(f"{what}: {a[0]} {a[1] if a[0] == 'error' else ''} vs {b[0]} "
                            f"{b[1] if b[0] == 'error' else ''}".strip())
    if a[0] == "ok":
        same(a[1], b[1], what)


def randomise(module, seed: int) -> None:
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
    ref_out = outcome(lambda: build(ref_ns))
    mut_out = outcome(lambda: build(mut_ns))
    same_outcome(("ok", None) if ref_out[0] == "ok" else ref_out,
                  ("ok", None) if mut_out[0] == "ok" else mut_out, "construction")
    if ref_out[0] == "error":
        return
    ref, mut = ref_out[1], mut_out[1]
    randomise(ref, 1)
    try:
        mut.load_state_dict(ref.state_dict())
    except Exception as e:  # noqa: BLE001
        raise NotEquivalent(f"the reference's weights do not load: {str(e).splitlines()[0][:120]}") from None
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        mut.train(mode == "train")
        xr, xm = x.clone(), x.clone()
        a = outcome(lambda: ref(xr))
        b = outcome(lambda: mut(xm))
        same_outcome(a, b, f"output in {mode} mode")
        same(xr, xm, f"the input after the call in {mode} mode")
        same(dict(ref.state_dict()), dict(mut.state_dict()), f"the state after {mode} mode")
