"""The static review (coursekit.grading.codescan): what reaches into the interpreter or the grader
is reported with its line, however it is spelled; ordinary course code is not."""

import pytest

from coursekit.grading.codescan import scan

LIBRARIES = {"torch", "nn", "F", "np", "plt", "torchvision", "DataLoader", "roc_auc_score"}

HONEST = {
    "module with setattr on self": "class B(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                                   "        for i in range(2):\n            setattr(self, f'layer{i}', nn.Linear(2, 2))",
    "model surgery": "model = torchvision.models.resnet18(weights=None)\nmodel.fc = nn.Linear(512, 2)\n"
                     "model.conv1.weight.requires_grad = False",
    "getattr of a layer": "layer = getattr(model, f'layer{i}')",
    "settings": "torch.backends.cudnn.benchmark = True\ntorch.backends.cudnn.enabled = False\n"
                "plt.rcParams['figure.figsize'] = (4, 3)",
    "magics": "%time x = 1\n%matplotlib inline\n%pip install tqdm",
    "ordinary dunders": "name = self.__class__.__name__\nprint(torch.__version__)",
    "files and paths": "import os, tempfile\npath = os.path.join(tempfile.mkdtemp(), 'best.pt')\n"
                       "torch.save(model.state_dict(), path)\nmodel.load_state_dict(torch.load(path))",
    "display": "from IPython.display import display\ndisplay(x)",
    "sys streams": "import sys\nsys.stdout.flush()",
    "timed cell": "%%time\nmodel = nn.Linear(2, 2)\n%timeit -n 2 model(torch.zeros(1, 2))\nmodel?",
    "a global of the student's own": "calls = 0\ndef step():\n    global calls\n    calls += 1",
    "the setup cell's Colab test": "import sys\nIN_COLAB = 'google.colab' in sys.modules\n"
                                   "if 'torch_xla' not in sys.modules:\n    pass",
    "an alias of sys, read as allowed": "import sys as system\nsystem.stdout.flush()\n"
                                        "colab = 'google.colab' in system.modules",
}

CHEATS = {
    "torch.allclose = f": "assigns torch.allclose",
    "import torch as t\nt.allclose = f": "assigns t.allclose",
    "x = torch\nx.nn.functional.relu = f": "assigns x.nn.functional.relu",
    "setattr(torch, 'allclose', f)": "calls setattr on torch",
    "vars(np)['isclose'] = f": "uses vars",
    "torch.__dict__['allclose'] = f": "reaches __dict__",
    "nn.Module.__call__ = f": "assigns nn.Module.__call__",
    "del torch.allclose": "deletes torch.allclose",
    "exec('x = 1')": "uses exec",
    "__import__('os').system('id')": "uses __import__",
    "import importlib": "imports importlib",
    "from ctypes import string_at": "imports ctypes",
    "import sys\nsys.modules['torch'].allclose = f": "uses sys.modules",
    "import sys\nok = 'x' in sys.modules and sys.modules.get('torch')": "uses sys.modules",
    "import sys\nm = [name for name in sys.modules]": "uses sys.modules",
    "import sys as s\nm = s.modules['torch']\nm.allclose = f": "uses sys.modules",
    "import sys\ns = sys\nok = 'torch' in s.modules\ns.modules['torch'].allclose = f": "uses sys.modules",
    "import os as o\no.system('id')": "uses os.system",
    "import os\nif (run := os):\n    run.kill(1, 9)": "uses os.kill",
    "import os\nos._exit(0)": "uses os._exit",
    "get_ipython().events.register('pre_run_cell', print)": "uses get_ipython",
    "f.__code__ = g.__code__": "reaches __code__",
    "frame = err.__traceback__.tb_frame": "reaches tb_frame",
    "class T(torch.Tensor):\n    pass": "subclasses torch.Tensor",
    "!cat /etc/passwd": "a shell command",
    "%run other.py": "the magic %run",
    "getattr(torch, '__dict__')": "reaches __dict__ through getattr",
    "import threading": "imports threading",
    "import urllib.request": "imports urllib.request",
    "import IPython": "imports IPython",
    "from unittest import mock\nwith mock.patch.object(torch, 'allclose', f):\n    pass": "imports unittest",
    "def f():\n    global torch\n    torch = g": "rebinds torch from inside a function",
}
# Code that %time, %timeit and the cell magics run is scanned too, with the cell's line numbers.
MAGIC_CODE = {
    "%%time\nx = 1\nimport ctypes": "line 3: imports ctypes",
    "%%capture\nsetattr(torch, 'allclose', f)": "line 2: calls setattr on torch",
    "x = 1\n%time torch.allclose = f": "line 2: assigns torch.allclose",
    "%timeit -n 1 -r 1 import ctypes": "line 1: imports ctypes",
    "%%timeit import ctypes\nx = 1": "line 1: imports ctypes",
    "%%time\n%time import gc": "line 2: imports gc",
}


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_code_is_not_flagged(name):
    assert scan(HONEST[name], LIBRARIES) == []


@pytest.mark.parametrize("code", list(CHEATS))
def test_reaching_in_is_reported_with_its_line(code):
    findings = scan(code, LIBRARIES)
    assert any(CHEATS[code] in f for f in findings), findings
    assert all(f.startswith("line ") or "magic" in f or "shell" in f for f in findings)


@pytest.mark.parametrize("code", list(MAGIC_CODE))
def test_code_inside_magics_is_scanned(code):
    findings = scan(code, LIBRARIES)
    assert any(f.startswith(MAGIC_CODE[code]) for f in findings), findings
