"""`make similarity`: a class of five where bob copied alice's answers (renaming what he could) and
carol, dave and erin wrote theirs independently; the copied pair comes first, every other pair
scores below INDEPENDENT_BELOW. No grading: the report reads the notebooks (~5 s)."""

import csv

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.similarity import report

# On this class (2026-12-05): the copied pair 1.0, the highest independent pair 0.18 (alice ~ carol).
INDEPENDENT_BELOW = 0.5
COPIED_ABOVE = 0.8

CAROL = {
    "residual_block": '''class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.conv1, self.bn1, _, self.conv2, self.bn2 = self.body
        needs_projection = stride > 1 or in_channels != out_channels
        self.shortcut = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                       nn.BatchNorm2d(out_channels)) if needs_projection else nn.Sequential())

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))
''',
    "adapt_resnet18": '''def adapt_resnet18(in_channels=1, num_classes=2):
    net = torchvision.models.resnet18(weights=None)
    old = net.conv1
    net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    net.fc = nn.Linear(512, num_classes)
    return net
''',
}
DAVE = {
    "residual_block": '''class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        layers = []
        for i in range(2):
            layers.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=3,
                                    stride=stride if i == 0 else 1, padding=1, bias=False))
            layers.append(nn.BatchNorm2d(out_channels))
        self.conv1, self.bn1, self.conv2, self.bn2 = layers
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Sequential()
        else:
            projection = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(projection, nn.BatchNorm2d(out_channels))

    def forward(self, x):
        h = self.bn1(self.conv1(x)).clamp(min=0)
        h = self.bn2(self.conv2(h))
        h += self.shortcut(x)
        return h.clamp(min=0)
''',
    "adapt_resnet18": '''from torchvision.models import resnet18

def adapt_resnet18(in_channels=1, num_classes=2):
    m = resnet18(weights=None, num_classes=num_classes)
    m.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return m
''',
}
ERIN = {
    "residual_block": '''class ResidualBlock(nn.Module):
    """Two convolutions and a skip."""

    def __init__(self, in_channels, out_channels, stride=1):
        super(ResidualBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, (3, 3), (stride, stride), (1, 1), bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, (3, 3), (1, 1), (1, 1), bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(out_channels), nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if (in_channels, stride) != (out_channels, 1):
            self.shortcut.add_module("conv", nn.Conv2d(in_channels, out_channels, (1, 1), (stride, stride), bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(out_channels))

    def forward(self, inputs):
        residual = self.shortcut(inputs)
        y = F.relu(self.bn1(self.conv1(inputs)))
        return F.relu(self.bn2(self.conv2(y)) + residual)
''',
    "adapt_resnet18": '''def adapt_resnet18(in_channels=1, num_classes=2):
    model = torchvision.models.resnet18(weights=None)
    setattr(model, "conv1", nn.Conv2d(in_channels, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False))
    model.fc = nn.Linear(in_features=model.fc.in_features, out_features=num_classes, bias=True)
    return model
''',
}


def copied(answers):
    """alice's answers as bob hands them in: names changed, comments dropped, a blank line added."""
    renames = [("out_channels", "c_out"), ("in_channels", "c_in"), ("shortcut", "skip"), ("model", "net")]
    copy = {}
    for cell, code in answers.items():
        lines = [line for line in code.splitlines() if not line.strip().startswith("#")]
        code = "\n\n".join(["\n".join(lines[:3]), "\n".join(lines[3:])])
        for old, new in renames:
            code = code.replace(old, new)
        copy[cell] = code
    return copy


def test_copied_pair_on_top_and_independent_pairs_below(tmp_path):
    a = load_course().assignments["resnet_blocks"]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    reference = nbs.reference_answers(source)
    alice = {cell: reference[cell] for cell in ("residual_block", "adapt_resnet18")}
    folder = tmp_path / "class"
    folder.mkdir()
    for student, answers in {"alice": alice, "bob": copied(alice), "carol": CAROL, "dave": DAVE,
                             "erin": ERIN}.items():
        nbs.write(nbs.make_submission(release, answers), folder / f"{student}.ipynb")
    (folder / "untouched.ipynb").write_text(nbs.writes(release))   # the starter alone: boilerplate only

    page, pairs = report(a.id, folder, tmp_path / "results")
    print("\n".join(f"{s:.3f} {x} {y}" for x, y, s in pairs))
    top, *rest = pairs
    assert top[:2] == ("alice", "bob") and top[2] >= COPIED_ABOVE, pairs
    assert all(score < INDEPENDENT_BELOW for _, _, score in rest), pairs
    assert all(score == 0 for x, y, score in rest if "untouched" in (x, y)), \
        f"the release's own code counted as shared: {pairs}"
    text = page.read_text()
    assert "never a verdict" in text and text.index("alice") < text.index("carol")
    with (tmp_path / "results" / "similarity.csv").open() as f:
        assert [(r["student_a"], r["student_b"]) for r in csv.DictReader(f)][0] == ("alice", "bob")
