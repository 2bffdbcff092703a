"""resnet_from_scratch: wrong and right answers for `bottleneck_block`, `preact_block`, `make_layer`,
`fixed_block`, `quiz`.

Every graded cell comes before or after part 5's training experiment, which is skipped while grading
(it checks NBGRADER_EXECUTION), so the suite grades the notebook up to the last quiz check
(LAST_CHECK): the fixtures (`stop_after`), and through test_grading.GRADED_UP_TO the reference and
the untouched release too. Nothing is trained for grading.
"""

from coursekit.config import load_course
from coursekit.nbgrader_ext import starter_code
from coursekit.notebooks import cells_by_grade_id, read, reference_answers

from . import Case, mistake

SOURCE = read(load_course().assignments["resnet_from_scratch"].notebook("source"))
REF = reference_answers(SOURCE)
BOTTLENECK, PREACT = REF["bottleneck_block"], REF["preact_block"]
LAYER, FIXED, QUIZ = REF["make_layer"], REF["fixed_block"], REF["quiz"]
STARTER = starter_code(cells_by_grade_id(SOURCE)["fixed_block"])   # the tutorial's buggy block
LAST_CHECK = "test_quiz_q05"
KEY = {"q1": "c", "q2": "b", "q3": "b", "q4": "c", "q5": "a"}
assert QUIZ.splitlines()[1].startswith("quiz_answers = {") and all(f'"{q}": "{a}"' in QUIZ for q, a in KEY.items()), (
    "the quiz key of the source notebook changed: update KEY here")


def wrong(name, cell, code, loses=()):
    return Case(name, cell, code, right=False, stop_after=LAST_CHECK, loses=tuple(loses))


def right(name, cell, code):
    return Case(name, cell, code.strip(), right=True, stop_after=LAST_CHECK)


def quiz(answers):
    """A quiz cell answering `answers` (question -> letter as written)."""
    return "quiz_answers = {\n" + "".join(f"    {q!r}: {a!r},\n" for q, a in answers.items()) + "}"


# ------------------------------------------------------------------ bottleneck_block
B_ADD_AND_RELU = "out = out + identity\n        return self.relu(out)"
B_CONV1 = "self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)"
B_CONV2 = "self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)"
B_BN2_LINE = "        self.bn2 = nn.BatchNorm2d(out_channels)\n"
B_MID = "out = self.relu(self.bn2(self.conv2(out)))"
B_LAST = "out = self.bn3(self.conv3(out))"

# ------------------------------------------------------------------ preact_block
P_RETURN = "return out + shortcut"
P_SHORTCUT = "shortcut = x if self.downsample is None else self.downsample(a)"

# ------------------------------------------------------------------ make_layer
DOWNSAMPLE_RULE = "if stride != 1 or self.in_channels != out_channels * block.expansion:"
LATER_BLOCKS = "layers.append(block(self.in_channels, out_channels))"
LAYER_BODY = LAYER[LAYER.index("        downsample = None\n"):LAYER.index("        return nn.Sequential(*layers)\n")]

# ------------------------------------------------------------------ fixed_block
SHORTCUT_RULE = "if stride != 1 or in_channels != filters:"
FIXED_CONV2 = "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=1, padding=padding, bias=False)"
FIXED_CONV2_STRIDED = "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=stride, padding=padding, bias=False)"
STARTER_CONV2 = "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=stride, padding=padding)"

CASES = [
    # ---- bottleneck_block: mistakes
    wrong("block_missing_skip", "bottleneck_block", mistake(BOTTLENECK, (B_ADD_AND_RELU, "return self.relu(out)"))),
    wrong("bottleneck_relu_before_add", "bottleneck_block",
          mistake(BOTTLENECK, (B_ADD_AND_RELU, "return self.relu(out) + identity"))),
    wrong("bottleneck_stride_on_first_1x1", "bottleneck_block",   # He et al.'s v1, not the contract's v1.5
          mistake(BOTTLENECK, (B_CONV1, B_CONV1.replace("kernel_size=1,", "kernel_size=1, stride=stride,")),
                  (B_CONV2, B_CONV2.replace("stride=stride", "stride=1")))),
    wrong("bottleneck_missing_bn2", "bottleneck_block",
          mistake(BOTTLENECK, (B_BN2_LINE, ""), (B_MID, "out = self.relu(self.conv2(out))"))),
    wrong("bottleneck_no_expansion", "bottleneck_block",
          mistake(BOTTLENECK, ("out_channels * self.expansion, kernel_size=1", "out_channels, kernel_size=1"),
                  ("nn.BatchNorm2d(out_channels * self.expansion)", "nn.BatchNorm2d(out_channels)"))),
    wrong("bottleneck_relu_after_bn3", "bottleneck_block", mistake(BOTTLENECK, (B_LAST, "out = self.relu(self.bn3(self.conv3(out)))"))),
    wrong("bottleneck_conv_bias", "bottleneck_block", mistake(BOTTLENECK, (", bias=False)", ")"))),
    wrong("bottleneck_downsample_ignored", "bottleneck_block",
          mistake(BOTTLENECK, ("identity = self.downsample(x)", "identity = x"))),
    # The block makes its own projection when none is given: the table says it creates no shortcut
    # layers itself (red team, 2026-12-06: no check built a shape-changing block without a downsample).
    wrong("bottleneck_own_projection", "bottleneck_block", mistake(BOTTLENECK, (
        "        self.downsample = downsample\n",
        "        if downsample is None and (stride != 1 or in_channels != out_channels * self.expansion):\n"
        "            downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels * self.expansion, 1, stride, bias=False),\n"
        "                                       nn.BatchNorm2d(out_channels * self.expansion))\n"
        "        self.downsample = downsample\n"))),
    # ---- preact_block: mistakes
    wrong("preact_relu_after_add", "preact_block", mistake(PREACT, (P_RETURN, "return self.relu(out + shortcut)"))),
    wrong("preact_downsample_reads_raw_input", "preact_block",
          mistake(PREACT, (P_SHORTCUT, "shortcut = x if self.downsample is None else self.downsample(x)"))),
    wrong("preact_identity_through_bn1", "preact_block",
          mistake(PREACT, (P_SHORTCUT, "shortcut = a if self.downsample is None else self.downsample(a)"))),
    wrong("preact_bn1_over_out_channels", "preact_block",
          mistake(PREACT, ("self.bn1 = nn.BatchNorm2d(in_channels)", "self.bn1 = nn.BatchNorm2d(out_channels)"))),
    wrong("preact_post_activation_order", "preact_block",   # conv → BN → ReLU inside the branch
          mistake(PREACT, ("out = self.conv2(self.relu(self.bn2(out)))", "out = self.relu(self.bn2(self.conv2(self.relu(out))))"))),
    # ---- make_layer: mistakes
    # The expansion guessed from the block's name instead of read from it (red team, 2026-12-06).
    wrong("layer_expansion_from_the_class_name", "make_layer", mistake(LAYER, (
        "        if stride != 1 or self.in_channels != out_channels * block.expansion:",
        "        expansion = 4 if 'Bottleneck' in block.__name__ else 1\n"
        "        if stride != 1 or self.in_channels != out_channels * expansion:"), (
        "                nn.Conv2d(self.in_channels, out_channels * block.expansion, kernel_size=1,",
        "                nn.Conv2d(self.in_channels, out_channels * expansion, kernel_size=1,"), (
        "                nn.BatchNorm2d(out_channels * block.expansion),",
        "                nn.BatchNorm2d(out_channels * expansion),"), (
        "        self.in_channels = out_channels * block.expansion",
        "        self.in_channels = out_channels * expansion"))),
    wrong("layer_never_downsample", "make_layer", mistake(LAYER, (DOWNSAMPLE_RULE, "if False:"))),
    wrong("layer_downsample_on_stride_only", "make_layer", mistake(LAYER, (DOWNSAMPLE_RULE, "if stride != 1:"))),
    wrong("layer_in_channels_not_updated", "make_layer",
          mistake(LAYER, ("        self.in_channels = out_channels * block.expansion\n", ""))),
    wrong("layer_stride_on_every_block", "make_layer",
          mistake(LAYER, (LATER_BLOCKS, "layers.append(block(self.in_channels, out_channels, stride))"))),
    wrong("layer_ignores_expansion", "make_layer",
          mistake(LAYER, ("out_channels * block.expansion", "out_channels"))),
    wrong("layer_downsample_with_bias", "make_layer",
          mistake(LAYER, ("stride=stride, bias=False),", "stride=stride),"))),
    # Found by make mutants: a downsample only where the width changes. Every stage ResNet builds widens
    # the tensor, so only a stage at an unchanged width with stride 2 (the method's own rule) tells.
    wrong("layer_downsample_on_width_only", "make_layer",
          mistake(LAYER, (DOWNSAMPLE_RULE, "if self.in_channels != out_channels * block.expansion:"))),
    # ---- fixed_block: the untouched tutorial block, half fixes and wrong fixes
    wrong("fixed_untouched_starter", "fixed_block", STARTER),
    wrong("fixed_stride_bug_only", "fixed_block",
          mistake(STARTER, (STARTER_CONV2, STARTER_CONV2.replace("stride=stride", "stride=1")))),
    wrong("fixed_shortcut_bug_only", "fixed_block", mistake(FIXED, (FIXED_CONV2, FIXED_CONV2_STRIDED))),
    wrong("fixed_projection_always", "fixed_block", mistake(FIXED, (SHORTCUT_RULE, "if True:"))),
    wrong("fixed_stride_moved_to_conv2", "fixed_block",
          mistake(FIXED, ("self.conv1 = nn.Conv2d(in_channels, filters, kernel_size, stride=stride, padding=padding, bias=False)",
                          "self.conv1 = nn.Conv2d(in_channels, filters, kernel_size, stride=1, padding=padding, bias=False)"),
                  (FIXED_CONV2, FIXED_CONV2_STRIDED))),
    # The two shape bugs fixed, Keras' conv biases kept (the third bug of the rubric).
    wrong("fixed_keeps_conv_bias", "fixed_block", mistake(FIXED, (", padding=padding, bias=False)", ", padding=padding)"))),
    # ---- quiz: intuitive but wrong predictions lose exactly their questions
    # (name kept: tests/test_gradescope.py grades it) BN parameters forgotten, a post-activation block taken
    # for the identity, its gradient taken for the identity path's.
    wrong("quiz_tutorial_key", "quiz", quiz({**KEY, "q1": "b", "q3": "a", "q4": "a"}),
          loses=["test_quiz_q01", "test_quiz_q03", "test_quiz_q04"]),
    wrong("quiz_shape_and_stride_wrong", "quiz", quiz({**KEY, "q2": "c", "q5": "d"}),
          loses=["test_quiz_q02", "test_quiz_q05"]),
    # ---- right answers written differently
    # The table's layers, also gathered in an nn.Sequential the forward pass uses: the same block (the
    # check against torchvision's loaded the whole state_dict, whose extra keys it refused).
    right("bottleneck_main_path_sequential", "bottleneck_block", mistake(BOTTLENECK, (
        "        self.downsample = downsample\n",
        "        self.downsample = downsample\n"
        "        self.main = nn.Sequential(self.conv1, self.bn1, nn.ReLU(), self.conv2, self.bn2, nn.ReLU(),\n"
        "                                  self.conv3, self.bn3)\n"), (
        "out = self.relu(self.bn1(self.conv1(x)))\n        out = self.relu(self.bn2(self.conv2(out)))\n        out = self.bn3(self.conv3(out))",
        "out = self.main(x)"))),
    right("bottleneck_functional_tuples", "bottleneck_block", '''
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels, out_channels, stride=1, downsample=None):
        super().__init__()
        width, wide = out_channels, out_channels * self.expansion
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, width, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, (3, 3), (stride, stride), (1, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, wide, kernel_size=(1, 1), bias=False)
        self.bn3 = nn.BatchNorm2d(wide)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))
'''),
    right("bottleneck_loop_and_inplace_add", "bottleneck_block", mistake(BOTTLENECK, (
        "        out = self.relu(self.bn1(self.conv1(x)))\n        out = self.relu(self.bn2(self.conv2(out)))\n"
        "        out = self.bn3(self.conv3(out))\n        out = out + identity\n",
        "        out = x\n"
        "        for i, (conv, bn) in enumerate([(self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)]):\n"
        "            out = bn(conv(out))\n"
        "            if i < 2:\n"
        "                out = self.relu(out)\n"
        "        out += identity\n"))),
    wrong("preact_own_projection", "preact_block", mistake(PREACT, (
        "        self.downsample = downsample\n",
        "        if downsample is None and (stride != 1 or in_channels != out_channels):\n"
        "            downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),\n"
        "                                       nn.BatchNorm2d(out_channels))\n"
        "        self.downsample = downsample\n"))),
    right("preact_functional_same_padding", "preact_block", '''
class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1, downsample=None):
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=(1, 1), bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding="same", bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        residual = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        if self.downsample is not None:
            return residual + self.downsample(pre)
        return residual + x
'''),
    right("preact_inplace_relu_and_add", "preact_block", mistake(PREACT, (
        "self.relu = nn.ReLU()", "self.relu = nn.ReLU(inplace=True)"), (P_RETURN, "out += shortcut\n        return out"))),
    right("layer_strides_list", "make_layer", LAYER.replace(LAYER_BODY, '''\
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            downsample = None
            if s != 1 or self.in_channels != out_channels * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(self.in_channels, out_channels * block.expansion, 1, s, bias=False),
                    nn.BatchNorm2d(out_channels * block.expansion))
            layers.append(block(self.in_channels, out_channels, stride=s, downsample=downsample))
            self.in_channels = out_channels * block.expansion
''')),
    right("layer_keywords_and_append", "make_layer", LAYER.replace(LAYER_BODY, '''\
        width = out_channels * block.expansion
        stage = nn.Sequential()
        needs_projection = stride > 1 or width != self.in_channels
        projection = nn.Sequential(nn.Conv2d(self.in_channels, width, kernel_size=(1, 1), stride=(stride, stride),
                                             bias=False),
                                   nn.BatchNorm2d(width)) if needs_projection else None
        stage.append(block(in_channels=self.in_channels, out_channels=out_channels, stride=stride,
                           downsample=projection))
        self.in_channels = width
        while len(stage) < num_blocks:
            stage.append(block(in_channels=width, out_channels=out_channels))
        layers = list(stage)
''')),
    right("fixed_same_padding", "fixed_block", mistake(FIXED, (
        "        padding = kernel_size // 2\n",
        "        padding = \"same\" if stride == 1 else (kernel_size // 2, kernel_size // 2)\n"), (
        "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=1, padding=padding, bias=False)",
        "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=1, padding=\"same\", bias=False)"))),
    right("fixed_shortcut_none_no_bias", "fixed_block", '''
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, filters, kernel_size=3, stride=1):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, filters, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.shortcut = None
        if stride != 1 or in_channels != filters:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, filters, 1, stride, bias=False),
                                          nn.BatchNorm2d(filters))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)
'''),
    right("quiz_capitals_and_spaces", "quiz",
          quiz({q: (f" {a.upper()}" if i % 2 else f"{a} ") for i, (q, a) in enumerate(KEY.items())})),
]
