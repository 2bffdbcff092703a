"""Each graded cell's contract (CONTRACTS): how to call it, drawn with hypothesis, and `equivalent()`,
which checks a mutant against the reference on that sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .equivalence import NotEquivalent, deadline, namespace, outcome, randomise, same, same_module, same_outcome


EXAMPLES = 16           # hypothesis examples per mutant (each is one drawn input and its module)


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
        same(ref_ns[name].expansion, mut_ns[name].expansion, f"{name}.expansion")
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
        out = outcome(lambda: ns["train_one_epoch"](model, loader, torch.nn.CrossEntropyLoss(), optimizer, "cpu"))
        results.append((out, dict(model.state_dict()), model.training))
    same_outcome(results[0][0], results[1][0], "the returned loss")
    same(results[0][1], results[1][1], "the weights after the epoch")


def _evaluate(ref_ns, mut_ns, data):
    import hypothesis.strategies as st
    import torch
    features, seed = data.draw(st.integers(1, 4), label="features"), data.draw(st.integers(0, 99), label="seed")
    loader = _batches(data, features)
    results = []
    for ns in (ref_ns, mut_ns):
        model = _tiny_classifier(seed, features).train()
        torch.manual_seed(seed)
        out = outcome(lambda: ns["evaluate"](model, loader, "cpu"))
        results.append((out, dict(model.state_dict())))
    same_outcome(results[0][0], results[1][0], "the returned metrics")
    same(results[0][1], results[1][1], "the model after evaluation")


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
        randomise(model, seed)
        layer = model[2]
        out = outcome(lambda: ns["grad_cam"](model, layer, x.clone(), targets))
        hooks = len(layer._forward_hooks) + len(layer._backward_hooks)
        results.append((out, hooks, dict(model.state_dict())))
    same_outcome(results[0][0], results[1][0], "the maps")
    same(results[0][1], results[1][1], "hooks left on the layer")
    same(results[0][2], results[1][2], "the model after Grad-CAM")


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
    same_outcome(outcome(lambda: ref_ns["dice_coefficient"](pred, target, **kw)),
                  outcome(lambda: mut_ns["dice_coefficient"](pred, target, **kw)), "Dice")


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
        with deadline(120):
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
        with deadline(300), with_reporter(lambda *_: None):
            prop()
    except (NotEquivalent, TimeoutError) as e:
        return False, str(e)
    except Exception as e:  # noqa: BLE001 (the reference passed this harness: the mutant broke it)
        return False, f"{type(e).__name__} in the comparison"
    return True, ""
