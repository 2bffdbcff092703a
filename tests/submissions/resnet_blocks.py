"""resnet_blocks: wrong and right answers for `residual_block`, `plain_vs_residual` and `adapt_resnet18`.

Graded whole: the only long cell, part 3's training experiment, is skipped while grading (it checks
NBGRADER_EXECUTION), so a whole submission takes seconds.
"""

from coursekit.config import load_course
from coursekit.notebooks import read, reference_answers

from . import Case, mistake

REF = reference_answers(read(load_course().assignments["resnet_blocks"].notebook("source")))
BLOCK, PVR, ADAPT = REF["residual_block"], REF["plain_vs_residual"], REF["adapt_resnet18"]
# residual_block and plain_vs_residual are checked first: their cases grade the notebook up to their
# last check.
BLOCK_DONE, PVR_DONE = "test_residual_block_behaviour", "test_plain_vs_residual_behaviour"


def block(name, *edits):
    return Case(name, "residual_block", mistake(BLOCK, *edits), right=False, stop_after=BLOCK_DONE)


def pvr(name, *edits):
    return Case(name, "plain_vs_residual", mistake(PVR, *edits), right=False, stop_after=PVR_DONE)


def adapt(name, *edits):
    return Case(name, "adapt_resnet18", mistake(ADAPT, *edits), right=False)


PROJECTION_RULE = "if stride != 1 or in_channels != out_channels:"
ADD_AND_RELU = "return F.relu(out + self.shortcut(x))"
ADD_SHORTCUT = "            out = out + shortcut\n"
OPTION_A = """            shortcut = x[:, :, ::self.stride, ::self.stride]
            if self.extra_channels:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
"""

CASES = [
    # ---- residual_block: mistakes
    block("block_missing_skip", (ADD_AND_RELU, "return F.relu(out)")),
    block("block_relu_before_add", (ADD_AND_RELU, "return F.relu(out) + self.shortcut(x)")),
    block("block_projection_always", (PROJECTION_RULE, "if True:")),
    block("block_projection_without_bn",
          ("bias=False),\n                nn.BatchNorm2d(out_channels),\n", "bias=False),\n")),
    # A bias on a convolution the table gives bias=False (batch norm follows): the structure check's points.
    block("block_conv_bias",
          ("self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1,\n                               padding=1, bias=False)",
           "self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1,\n                               padding=1)")),
    block("block_batchnorm_unused",
          ("out = F.relu(self.bn1(self.conv1(x)))", "out = F.relu(self.conv1(x))"),
          ("out = self.bn2(self.conv2(out))", "out = self.conv2(out)")),
    block("block_batchnorm_missing",
          ("self.bn1 = nn.BatchNorm2d(out_channels)\n", ""),
          ("self.bn2 = nn.BatchNorm2d(out_channels)\n", ""),
          ("out = F.relu(self.bn1(self.conv1(x)))", "out = F.relu(self.conv1(x))"),
          ("out = self.bn2(self.conv2(out))", "out = self.conv2(out)")),
    # Batch norm kept in eval mode inside forward (red team, 2026-12-06): the behaviour check computed
    # its expected output by calling the block's own layers, after forward had switched them.
    block("block_batchnorm_eval_in_forward",
          ("out = F.relu(self.bn1(self.conv1(x)))", "self.bn1.eval()\n        self.bn2.eval()\n        out = F.relu(self.bn1(self.conv1(x)))")),
    # The signature of the task is (in_channels, out_channels, stride=1): a third argument that is not
    # the stride turns ResidualBlock(64, 128, 2) into another block.
    block("block_kernel_size_third_argument",
          ("def __init__(self, in_channels, out_channels, stride=1):", "def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):"),
          ("kernel_size=3, stride=stride,", "kernel_size=kernel_size, stride=stride,"),
          ("kernel_size=3, stride=1,", "kernel_size=kernel_size, stride=1,")),
    block("block_stride_on_both_convs",
          ("kernel_size=3, stride=1,", "kernel_size=3, stride=stride,")),
    block("block_conv_relu_bn_order",
          ("out = F.relu(self.bn1(self.conv1(x)))", "out = self.bn1(F.relu(self.conv1(x)))")),
    block("block_ignores_stride",
          ("kernel_size=3, stride=stride,", "kernel_size=3, stride=1,"),
          ("kernel_size=1, stride=stride,", "kernel_size=1, stride=1,")),
    block("block_hardcoded_channels",
          ("nn.Conv2d(in_channels, out_channels, kernel_size=3", "nn.Conv2d(64, 64, kernel_size=3"),
          ("nn.Conv2d(out_channels, out_channels, kernel_size=3", "nn.Conv2d(64, 64, kernel_size=3"),
          ("self.bn1 = nn.BatchNorm2d(out_channels)", "self.bn1 = nn.BatchNorm2d(64)"),
          ("self.bn2 = nn.BatchNorm2d(out_channels)", "self.bn2 = nn.BatchNorm2d(64)")),
    block("block_adds_into_input",
          (ADD_AND_RELU, "identity = self.shortcut(x)\n        identity += out\n        return F.relu(identity)")),
    # ---- plain_vs_residual: mistakes
    pvr("pvr_shortcut_never_added", (ADD_SHORTCUT, "")),
    pvr("pvr_relu_before_add",
        ("out = self.bn2(self.conv2(out))", "out = F.relu(self.bn2(self.conv2(out)))"),
        ("return F.relu(out)", "return out")),
    pvr("pvr_projection_shortcut",
        ("self.extra_channels = out_channels - in_channels\n",
         "self.extra_channels = out_channels - in_channels\n"
         "        self.projection = None\n"
         "        if residual and (stride != 1 or in_channels != out_channels):\n"
         "            self.projection = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),\n"
         "                                            nn.BatchNorm2d(out_channels))\n"),
        (OPTION_A, "            shortcut = x if self.projection is None else self.projection(x)\n")),
    pvr("pvr_zero_channels_first",
        ("F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))", "F.pad(shortcut, (0, 0, 0, 0, self.extra_channels, 0))")),
    pvr("pvr_adds_into_input", (ADD_SHORTCUT, "            shortcut += out\n            out = shortcut\n")),
    # Written from the contract (global average pooling over height and width, any image size):
    # a pooling window as high as the feature map is global only on square images.
    pvr("pvr_pool_window_from_height",
        ("return self.fc(x.mean(dim=(2, 3)))", "return self.fc(F.avg_pool2d(x, x.shape[2]).flatten(1))")),
    # Padding 1 spelled as a tuple and as "same" (stride 1): the same convolutions, full marks.
    Case("pvr_tuple_and_same_padding", "plain_vs_residual", mistake(
        PVR, ("kernel_size=3, stride=stride, padding=1, bias=False)", "kernel_size=3, stride=stride, padding=(1, 1), bias=False)"),
        ("kernel_size=3, stride=1, padding=1, bias=False)", "kernel_size=(3, 3), stride=1, padding=\"same\", bias=False)"),
        ("nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False)",
         "nn.Conv2d(in_channels, width, kernel_size=3, padding=\"same\", bias=False)")),
         right=True, stop_after=PVR_DONE),
    # Each batch norm defined before its convolution (found by make mutants): where a layer is defined
    # is no behaviour, full marks.
    Case("pvr_batchnorm_defined_first", "plain_vs_residual", mistake(
        PVR, ("        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)\n"
              "        self.bn1 = nn.BatchNorm2d(out_channels)\n",
              "        self.bn1 = nn.BatchNorm2d(out_channels)\n"
              "        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)\n"),
        ("        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)\n"
         "        self.bn2 = nn.BatchNorm2d(out_channels)\n",
         "        self.bn2 = nn.BatchNorm2d(out_channels)\n"
         "        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)\n")),
         right=True, stop_after=PVR_DONE),
    # ---- adapt_resnet18: mistakes
    adapt("adapt_fc_not_replaced", ("model.fc = nn.Linear(model.fc.in_features, num_classes)\n", "")),
    adapt("adapt_conv1_not_replaced",
          ("model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)\n", "")),
    adapt("adapt_resnet34", ("torchvision.models.resnet18(", "torchvision.models.resnet34(")),
    adapt("adapt_resnet50", ("torchvision.models.resnet18(", "torchvision.models.resnet50(")),
    adapt("adapt_ignores_arguments",
          ("nn.Conv2d(in_channels, 64", "nn.Conv2d(1, 64"),
          ("nn.Linear(model.fc.in_features, num_classes)", "nn.Linear(model.fc.in_features, 2)")),
    adapt("adapt_fc_fixed_width", ("nn.Linear(model.fc.in_features, num_classes)", "nn.Linear(512, 2)")),
    # The stem the task describes (kernel 7, stride 2, padding 3, no bias): make mutants found that
    # these kept every point before the architecture check compared outputs with the student's weights.
    adapt("adapt_stem_stride_1", ("kernel_size=7, stride=2, padding=3", "kernel_size=7, stride=1, padding=3")),
    adapt("adapt_stem_conv_bias", ("padding=3, bias=False)", "padding=3)")),
    # ---- right answers written differently
    Case("block_relu_modules_inplace_add", "residual_block", '''
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super(ResidualBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)
'''.strip(), right=True, stop_after=BLOCK_DONE),
    Case("block_explicit_identity_branch", "residual_block", '''
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        layers = []
        if stride != 1 or in_channels != out_channels:
            layers = [nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                      nn.BatchNorm2d(out_channels)]
        self.shortcut = nn.Sequential(*layers)

    def forward(self, x):
        identity = self.shortcut(x) if len(self.shortcut) > 0 else x
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + identity)
'''.strip(), right=True, stop_after=BLOCK_DONE),
    # IPython magics as students use them: the kernel runs them, and so must the verification run
    # (plan.as_python); before, one magic line made the cell a SyntaxError there: 0 points, flagged.
    # With them, idioms that were flagged for review: help() (pydoc sets its pager on first use),
    # the setup cell's Colab test on sys.modules, and a cuDNN setting.
    Case("block_with_magics", "residual_block", "%%time\n%matplotlib inline\n" + BLOCK + '''


ResidualBlock?
help(nn.ReLU)
import sys
if "google.colab" not in sys.modules:
    torch.backends.cudnn.enabled = True
%time probe = ResidualBlock(8, 16, stride=2)(torch.randn(1, 8, 6, 6))
%timeit -n 2 -r 1 ResidualBlock(8, 8)(torch.randn(1, 8, 4, 4))
''', right=True, stop_after=BLOCK_DONE),
    # A dataclass with a ClassVar: the verification run compiled student cells under the runner's own
    # `from __future__ import annotations` (string annotations: dataclasses raised), the kernel not.
    Case("block_dataclass_settings", "residual_block", '''
from dataclasses import dataclass
from typing import ClassVar


@dataclass
class Settings:
    kernel: int = 3
    tried: ClassVar[list] = [8, 16]


'''.lstrip() + BLOCK.replace("kernel_size=3", "kernel_size=Settings().kernel"), right=True, stop_after=BLOCK_DONE),
    Case("pvr_sequential_body_and_cat", "plain_vs_residual", '''
class Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride, residual):
        super().__init__()
        self.residual, self.stride, self.pad = residual, stride, out_channels - in_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x):
        y = self.body(x)
        if self.residual:
            s = x[:, :, ::self.stride, ::self.stride]
            if self.pad:
                s = torch.cat([s, s.new_zeros(s.shape[0], self.pad, *s.shape[2:])], dim=1)
            y += s
        return torch.relu(y)


class DeepCNN(nn.Module):
    def __init__(self, depth, residual, width=16, in_channels=1, num_classes=2):
        super().__init__()
        n = (depth - 2) // 6
        layers = [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
        for i, w in enumerate((width, 2 * width, 4 * width)):
            for j in range(n):
                layers.append(Block(c, w, 2 if i and not j else 1, residual))
                c = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
'''.strip(), right=True, stop_after=PVR_DONE),
    Case("adapt_num_classes_argument", "adapt_resnet18", '''
def adapt_resnet18(in_channels=1, num_classes=2):
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, model.conv1.out_channels, kernel_size=7, stride=2,
                            padding=3, bias=False)
    return model
'''.strip(), right=True),
    Case("adapt_imported_constructor", "adapt_resnet18", '''
from torchvision.models import resnet18


def adapt_resnet18(in_channels=1, num_classes=2):
    net = resnet18()
    net.conv1 = torch.nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.fc = torch.nn.Linear(512, num_classes)
    return net
'''.strip(), right=True),
]
