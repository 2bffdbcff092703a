"""resnet_from_scratch: wrong and right answers for `basic_block`, `make_layer`, `fixed_block`, `quiz`.

Every graded cell comes before or after part 4's training experiment, which is skipped while grading
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
BLOCK, LAYER, FIXED, QUIZ = REF["basic_block"], REF["make_layer"], REF["fixed_block"], REF["quiz"]
STARTER = starter_code(cells_by_grade_id(SOURCE)["fixed_block"])   # the tutorial's buggy block
LAST_CHECK = "test_quiz_q14"
KEY = {"q1": "b", "q2": "a", "q3": "d", "q4": "c", "q5": "d", "q6": "a", "q7": "c",
       "q8": "b", "q9": "c", "q10": "c", "q11": "a", "q12": "d", "q13": "b", "q14": "a"}
# The answer key of the seed notebook's quiz (questions 1-10), which the corrected quiz keeps at the
# same letters: right where the seed was right (q2, q4, q6, q7, q10), the seed's wrong answer (or,
# for its nonsense question 9, a distractor) where it was wrong.
SEED_KEY = {"q1": "a", "q2": "a", "q3": "a", "q4": "c", "q5": "c", "q6": "a", "q7": "c",
            "q8": "c", "q9": "a", "q10": "c"}
assert QUIZ.splitlines()[1].startswith("quiz_answers = {") and all(f'"{q}": "{a}"' in QUIZ for q, a in KEY.items()), (
    "the quiz key of the source notebook changed: update KEY here")


def wrong(name, cell, code, loses=()):
    return Case(name, cell, code, right=False, stop_after=LAST_CHECK, loses=tuple(loses))


def right(name, cell, code):
    return Case(name, cell, code.strip(), right=True, stop_after=LAST_CHECK)


def quiz(answers):
    """A quiz cell answering `answers` (question -> letter as written)."""
    return "quiz_answers = {\n" + "".join(f"    {q!r}: {a!r},\n" for q, a in answers.items()) + "}"


# ------------------------------------------------------------------ basic_block
ADD_AND_RELU = "out = out + identity\n        return self.relu(out)"
CONV2_STRIDE = "kernel_size=3, stride=1,\n                               padding=1, bias=False)\n        self.bn2"
KEEP_DOWNSAMPLE = "self.downsample = downsample"

# ------------------------------------------------------------------ make_layer
DOWNSAMPLE_RULE = "if stride != 1 or self.in_channels != out_channels * block.expansion:"
LATER_BLOCKS = "layers.append(block(self.in_channels, out_channels))"
LAYER_BODY = LAYER[LAYER.index("        downsample = None\n"):LAYER.index("        return nn.Sequential(*layers)\n")]

# ------------------------------------------------------------------ fixed_block
SHORTCUT_RULE = "if stride != 1 or in_channels != filters:"
FIXED_CONV2 = "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=1, padding=padding)"
BUGGY_CONV2 = "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=stride, padding=padding)"

CASES = [
    # ---- basic_block: mistakes
    wrong("block_missing_skip", "basic_block", mistake(BLOCK, (ADD_AND_RELU, "return self.relu(out)"))),
    wrong("block_relu_before_add", "basic_block",
          mistake(BLOCK, (ADD_AND_RELU, "return self.relu(out) + identity"))),
    wrong("block_downsample_ignored", "basic_block",
          mistake(BLOCK, ("identity = self.downsample(x)", "identity = x"))),
    wrong("block_stride_on_both_convs", "basic_block",
          mistake(BLOCK, (CONV2_STRIDE, CONV2_STRIDE.replace("stride=1", "stride=stride")))),
    wrong("block_builds_own_shortcut", "basic_block", mistake(BLOCK, (KEEP_DOWNSAMPLE, """self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))"""))),
    wrong("block_adds_into_input", "basic_block",
          mistake(BLOCK, (ADD_AND_RELU, "identity += out\n        return self.relu(identity)"))),
    # ---- make_layer: mistakes
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
    # ---- fixed_block: the untouched tutorial block, half fixes and wrong fixes
    wrong("fixed_untouched_starter", "fixed_block", STARTER),
    wrong("fixed_stride_bug_only", "fixed_block",
          mistake(STARTER, (BUGGY_CONV2, FIXED_CONV2))),
    wrong("fixed_shortcut_bug_only", "fixed_block", mistake(FIXED, (FIXED_CONV2, BUGGY_CONV2))),
    wrong("fixed_projection_always", "fixed_block", mistake(FIXED, (SHORTCUT_RULE, "if True:"))),
    wrong("fixed_stride_moved_to_conv2", "fixed_block",
          mistake(FIXED, ("self.conv1 = nn.Conv2d(in_channels, filters, kernel_size, stride=stride, padding=padding)",
                          "self.conv1 = nn.Conv2d(in_channels, filters, kernel_size, stride=1, padding=padding)"),
                  (FIXED_CONV2, BUGGY_CONV2))),
    # ---- quiz: the seed notebook's answer key loses exactly the questions it got wrong
    wrong("quiz_tutorial_key", "quiz", quiz({**KEY, **SEED_KEY}),
          loses=["test_quiz_q01", "test_quiz_q03", "test_quiz_q05", "test_quiz_q08", "test_quiz_q09"]),
    wrong("quiz_code_questions_wrong", "quiz",
          quiz({**KEY, "q11": "b", "q12": "a", "q13": "d", "q14": "b"}),
          loses=["test_quiz_q11", "test_quiz_q12", "test_quiz_q13", "test_quiz_q14"]),
    # ---- right answers written differently
    right("block_functional_relu_with_bias", "basic_block", '''
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + shortcut)
'''),
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
    # Written from the contract (part 2's table, part 5's tutorial): batch norm with the running
    # statistics in train mode too (eval mode is exact), which only a train-mode check sees.
    wrong("block_running_stats_when_training", "basic_block", mistake(BLOCK, (
        "        out = self.relu(self.bn1(self.conv1(x)))\n        out = self.bn2(self.conv2(out))\n",
        "        out = self.relu(F.batch_norm(self.conv1(x), self.bn1.running_mean, self.bn1.running_var,\n"
        "                                     self.bn1.weight, self.bn1.bias))\n"
        "        out = F.batch_norm(self.conv2(out), self.bn2.running_mean, self.bn2.running_var,\n"
        "                           self.bn2.weight, self.bn2.bias)\n"))),
    # Equivalent spellings of padding 1 (a tuple, "same" at stride 1): the same convolutions.
    right("block_tuple_and_same_padding", "basic_block", mistake(BLOCK, (
        "kernel_size=3, stride=stride,\n                               padding=1, bias=False)",
        "kernel_size=(3, 3), stride=stride,\n                               padding=(1, 1), bias=False)"), (
        "kernel_size=3, stride=1,\n                               padding=1, bias=False)",
        "kernel_size=3, stride=1,\n                               padding=\"same\", bias=False)"))),
    right("fixed_same_padding", "fixed_block", mistake(FIXED, (
        "        padding = kernel_size // 2\n",
        "        padding = \"same\" if stride == 1 else (kernel_size // 2, kernel_size // 2)\n"), (
        "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=1, padding=padding)",
        "self.conv2 = nn.Conv2d(filters, filters, kernel_size, stride=1, padding=\"same\")"))),
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
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, filters, 1, stride), nn.BatchNorm2d(filters))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)
'''),
    right("quiz_capitals_and_spaces", "quiz",
          quiz({q: (f" {a.upper()}" if i % 2 else f"{a} ") for i, (q, a) in enumerate(KEY.items())})),
]
