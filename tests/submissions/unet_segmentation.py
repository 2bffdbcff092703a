"""unet_segmentation: wrong and right answers for `double_conv`, `unet`, `resnet_unet`,
`dice_coefficient` and `train_unet`.

Every answer is checked before the training cells, so each fixture grades only the notebook up
to its cells' last test (`stop_after`): seconds, not a training run. `unet`, `resnet_unet` and
`dice_coefficient` share one prefix (up to the last Dice test): none of them is used by another's
tests, so a mistake in one cannot cost points elsewhere, and one batch grades them all.
`double_conv` stops at its own tests: both U-Nets are built from `DoubleConv`. The one fixture
that needs training, `train_no_zero_grad`, passes every check before training and must fail the
trained plain U-Net's Dice floor; it stops after that test, before the ResNet-encoder U-Net is
trained with the same (broken) loop.

Each notebook graded costs a kernel, the imports and the data cells (10-20 s on a shared 2-core
machine), so the list is kept to one or two representative mistakes per test. Also checked when
the notebook was written, and dropped for time: DoubleConv without batch norm; a U-Net that adds
its skips, skips on two levels only, ignores base_channels, defines an unused layer; Dice without
eps, IoU instead of Dice; a loss with soft Dice on logits; returning the last weights; a loss
history per batch. Each lost points on its own cell only.

The resnet_unet layouts (max-pool downsampling, the stride in the second block or on conv2, an
extra block, skips from a stage's first block) are written from the table in part 4: the checks
compare the encoder's blocks, in the order they run, with the table exactly (widths, strides, the
chain, each block's computation from its own weights, the parameter total).
"""

from coursekit.config import load_course
from coursekit.notebooks import read, reference_answers

from . import Case, mistake

REF = reference_answers(read(load_course().assignments["unet_segmentation"].notebook("source")))
TRAIN = REF["train_unet"]
RESNET = REF["resnet_unet"]
SHARED_STOP = "test_dice_coefficient_library"
STOP = {"double_conv": "test_double_conv_layers", "unet": SHARED_STOP, "resnet_unet": SHARED_STOP,
        "dice_coefficient": SHARED_STOP, "train_unet": "test_train_unet_checkpoint"}


def wrong(cell, name, *edits):
    return Case(name, cell, mistake(REF[cell], *edits), right=False, stop_after=STOP[cell])


def right(cell, name, code):
    return Case(name, cell, code.strip(), right=True, stop_after=STOP[cell])


SECOND_STAGE = ("            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),\n"
                "            nn.BatchNorm2d(out_channels),\n"
                "            nn.ReLU(inplace=True),\n")
DECODER = '''        d4 = self.dec4(torch.cat([e4, self.up4(b)], dim=1))
        d3 = self.dec3(torch.cat([e3, self.up3(d4)], dim=1))
        d2 = self.dec2(torch.cat([e2, self.up2(d3)], dim=1))
        d1 = self.dec1(torch.cat([e1, self.up1(d2)], dim=1))'''
DECODER_BLOCKS = [("self.dec4 = DoubleConv(2 * c4, c4)", "self.dec4 = DoubleConv(c4, c4)"),
                  ("self.dec3 = DoubleConv(2 * c3, c3)", "self.dec3 = DoubleConv(c3, c3)"),
                  ("self.dec2 = DoubleConv(2 * c2, c2)", "self.dec2 = DoubleConv(c2, c2)"),
                  ("self.dec1 = DoubleConv(2 * c1, c1)", "self.dec1 = DoubleConv(c1, c1)")]
PER_IMAGE = "return ((2 * intersection + eps) / (total + eps)).mean().item()"
SOFT_DICE = ("soft_dice = (2 * (probs * targets).sum(dim=1) + 1) / "
             "(probs.sum(dim=1) + targets.sum(dim=1) + 1)")
BEST = "best_dice, best_state = val_dice, copy.deepcopy(model.state_dict())"
RESNET_ENCODER = """        self.enc1 = ResidualBlock(in_channels, c1)
        self.enc2 = nn.Sequential(ResidualBlock(c1, c2, stride=2), ResidualBlock(c2, c2))
        self.enc3 = nn.Sequential(ResidualBlock(c2, c3, stride=2), ResidualBlock(c3, c3))
        self.enc4 = nn.Sequential(ResidualBlock(c3, c4, stride=2), ResidualBlock(c4, c4))
        self.bottleneck = nn.Sequential(ResidualBlock(c4, c5, stride=2), ResidualBlock(c5, c5))
"""

CASES = [
    # ---- double_conv: mistakes
    wrong("double_conv", "dc_single_conv", (SECOND_STAGE, "")),
    wrong("double_conv", "dc_no_padding", ("kernel_size=3, padding=1", "kernel_size=3, padding=0")),
    wrong("double_conv", "dc_relu_before_batchnorm",
          ("            nn.BatchNorm2d(out_channels),\n            nn.ReLU(inplace=True),\n",
           "            nn.ReLU(inplace=True),\n            nn.BatchNorm2d(out_channels),\n")),
    # The task's bias=False (the batch norm after each convolution has its own shift), as in
    # Notebook 1's blocks: a convolution with a bias is a parameter too many.
    wrong("double_conv", "dc_conv_bias", ("kernel_size=3, padding=1, bias=False", "kernel_size=3, padding=1")),
    # Adds its input where the widths agree (red team, 2026-12-06): the value check had no such case.
    wrong("double_conv", "dc_adds_input_when_same_width",
          ("        return self.block(x)", "        out = self.block(x)\n        return out + x if out.shape == x.shape else out")),
    # ---- double_conv: a right answer written differently
    right("double_conv", "dc_named_layers_functional_relu", '''
class DoubleConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding="same", bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))
'''),
    # ---- unet: mistakes
    wrong("unet", "unet_no_skips", *DECODER_BLOCKS, (DECODER, '''        d4 = self.dec4(self.up4(b))
        d3 = self.dec3(self.up3(d4))
        d2 = self.dec2(self.up2(d3))
        d1 = self.dec1(self.up1(d2))''')),
    wrong("unet", "unet_concatenates_decoder_twice",
          ("torch.cat([e4, self.up4(b)], dim=1)", "torch.cat([self.up4(b), self.up4(b)], dim=1)"),
          ("torch.cat([e3, self.up3(d4)], dim=1)", "torch.cat([self.up3(d4), self.up3(d4)], dim=1)"),
          ("torch.cat([e2, self.up2(d3)], dim=1)", "torch.cat([self.up2(d3), self.up2(d3)], dim=1)"),
          ("torch.cat([e1, self.up1(d2)], dim=1)", "torch.cat([self.up1(d2), self.up1(d2)], dim=1)")),
    wrong("unet", "unet_three_down_steps",
          ("        self.enc4 = DoubleConv(c3, c4)\n", ""),
          ("self.bottleneck = DoubleConv(c4, c5)", "self.bottleneck = DoubleConv(c3, c4)"),
          ("        self.up4 = nn.ConvTranspose2d(c5, c4, kernel_size=2, stride=2)\n"
           "        self.dec4 = DoubleConv(2 * c4, c4)\n", ""),
          ("        e4 = self.enc4(self.pool(e3))\n        b = self.bottleneck(self.pool(e4))\n"
           "        d4 = self.dec4(torch.cat([e4, self.up4(b)], dim=1))\n",
           "        d4 = self.bottleneck(self.pool(e3))\n")),
    wrong("unet", "unet_sigmoid_output", ("return self.head(d1)", "return torch.sigmoid(self.head(d1))")),
    # ---- unet: a right answer written differently
    right("unet", "unet_bilinear_upsampling", '''
class Up(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(torch.concat([skip, self.reduce(x)], dim=-3))


class UNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, base_channels=16):
        super().__init__()
        c = base_channels
        self.inc = DoubleConv(in_channels, c)
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(c * 2 ** k, c * 2 ** (k + 1)))
                                   for k in range(4))
        self.ups = nn.ModuleList(Up(c * 2 ** (k + 1), c * 2 ** k) for k in reversed(range(4)))
        self.outc = nn.Conv2d(c, out_channels, kernel_size=1)

    def forward(self, x):
        features = [self.inc(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return self.outc(x)
'''),
    # ---- resnet_unet: mistakes
    # The decoder is the plain U-Net's, so the same edits remove its skips.
    wrong("resnet_unet", "resnet_unet_no_skips", *DECODER_BLOCKS, (DECODER, '''        d4 = self.dec4(self.up4(b))
        d3 = self.dec3(self.up3(d4))
        d2 = self.dec2(self.up2(d3))
        d1 = self.dec1(self.up1(d2))''')),
    wrong("resnet_unet", "resnet_unet_relu_before_addition",
          ("        out = self.bn2(self.conv2(out))\n        return F.relu(out + self.shortcut(x))",
           "        out = F.relu(self.bn2(self.conv2(out)))\n        return out + self.shortcut(x)")),
    # The plain U-Net's encoder again (DoubleConv and max-pool): no residual block at all.
    wrong("resnet_unet", "resnet_unet_plain_encoder", (RESNET_ENCODER, """        self.pool = nn.MaxPool2d(2)
        self.enc1 = DoubleConv(in_channels, c1)
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c1, c2))
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c2, c3))
        self.enc4 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c3, c4))
        self.bottleneck = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c4, c5))
""")),
    wrong("resnet_unet", "resnet_unet_one_block_per_stage",
          *[(f"nn.Sequential(ResidualBlock({a}, {b}, stride=2), ResidualBlock({b}, {b}))",
             f"nn.Sequential(ResidualBlock({a}, {b}, stride=2))")
            for a, b in [("c1", "c2"), ("c2", "c3"), ("c3", "c4"), ("c4", "c5")]]),
    # Layouts that the table does not describe, each with ResNet-18's blocks and the same number of
    # parameters or the same output sizes (the checks once counted blocks "at least" and compared
    # sizes only). Downsampling by max-pool before stride-1 blocks: the same weights, other outputs.
    wrong("resnet_unet", "resnet_unet_maxpool_downsampling",
          *[(f"ResidualBlock({a}, {b}, stride=2)", f"nn.MaxPool2d(2), ResidualBlock({a}, {b})")
            for a, b in [("c1", "c2"), ("c2", "c3"), ("c3", "c4"), ("c4", "c5")]]),
    # The stride in each stage's second block: the first block runs at the larger size.
    wrong("resnet_unet", "resnet_unet_stride_in_second_block",
          *[(f"nn.Sequential(ResidualBlock({a}, {b}, stride=2), ResidualBlock({b}, {b}))",
             f"nn.Sequential(ResidualBlock({a}, {b}), ResidualBlock({b}, {b}, stride=2))")
            for a, b in [("c1", "c2"), ("c2", "c3"), ("c3", "c4"), ("c4", "c5")]]),
    # One block too many (in the cheap first stage: 0.89 M parameters, within the stated range).
    wrong("resnet_unet", "resnet_unet_extra_block",
          ("nn.Sequential(ResidualBlock(c1, c2, stride=2), ResidualBlock(c2, c2))",
           "nn.Sequential(ResidualBlock(c1, c2, stride=2), ResidualBlock(c2, c2), ResidualBlock(c2, c2))")),
    # The stride on conv2 instead of conv1: same layers and sizes, another computation.
    wrong("resnet_unet", "resnet_unet_stride_on_conv2",
          ("kernel_size=3, stride=stride, padding=1, bias=False)", "kernel_size=3, padding=1, bias=False)"),
          ("self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)",
           "self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)")),
    # The decoder takes each stage's first block's output instead of the stage's.
    wrong("resnet_unet", "resnet_unet_skip_from_first_block",
          ("        e2 = self.enc2(e1)\n        e3 = self.enc3(e2)\n        e4 = self.enc4(e3)\n"
           "        b = self.bottleneck(e4)\n",
           "        s2 = self.enc2[0](e1)\n        e2 = self.enc2[1](s2)\n        s3 = self.enc3[0](e2)\n"
           "        e3 = self.enc3[1](s3)\n        s4 = self.enc4[0](e3)\n        e4 = self.enc4[1](s4)\n"
           "        b = self.bottleneck(e4)\n"),
          ("torch.cat([e4, self.up4(b)], dim=1)", "torch.cat([s4, self.up4(b)], dim=1)"),
          ("torch.cat([e3, self.up3(d4)], dim=1)", "torch.cat([s3, self.up3(d4)], dim=1)"),
          ("torch.cat([e2, self.up2(d3)], dim=1)", "torch.cat([s2, self.up2(d3)], dim=1)")),
    # The signature's defaults are part of the contract (make mutants found in_channels=2 kept every point).
    wrong("resnet_unet", "resnet_unet_default_in_channels",
          ("def __init__(self, in_channels=1, out_channels=1, base_channels=16):",
           "def __init__(self, in_channels=3, out_channels=1, base_channels=16):")),
    # ---- resnet_unet: right answers written differently
    right("resnet_unet", "resnet_unet_loops_tuple_padding", '''
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, (3, 3), (stride, stride), (1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, "same", bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Up(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, (2, 2), stride=(2, 2))
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x, skip):
        return self.conv(torch.cat((skip, self.up(x)), 1))


class ResNetUNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, base_channels=16):
        super().__init__()
        widths = [base_channels * 2 ** k for k in range(5)]
        self.stem = ResidualBlock(in_channels, widths[0])
        self.stages = nn.ModuleList(
            nn.Sequential(ResidualBlock(widths[k], widths[k + 1], 2),
                          ResidualBlock(widths[k + 1], widths[k + 1]))
            for k in range(4))
        self.ups = nn.ModuleList(Up(widths[k + 1], widths[k]) for k in reversed(range(4)))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x):
        features = [self.stem(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        x = features.pop()
        for up in self.ups:
            x = up(x, features.pop())
        return self.out(x)
'''),
    right("resnet_unet", "resnet_unet_make_stage_up_first", '''
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        layers = []
        if stride > 1 or in_channels != out_channels:
            layers = [nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)]
        self.shortcut = nn.Sequential(*layers)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.shortcut(x) + self.bn2(self.conv2(y)))


def make_stage(in_channels, out_channels, blocks=2):
    return nn.Sequential(ResidualBlock(in_channels, out_channels, stride=2),
                         *[ResidualBlock(out_channels, out_channels) for _ in range(blocks - 1)])


class ResNetUNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, base_channels=16):
        super().__init__()
        c = base_channels
        self.encoder = nn.ModuleList([ResidualBlock(in_channels, c)] +
                                     [make_stage(c * 2 ** k, c * 2 ** (k + 1)) for k in range(4)])
        self.upsamplers = nn.ModuleList(nn.ConvTranspose2d(c * 2 ** (k + 1), c * 2 ** k, 2, stride=2)
                                        for k in range(3, -1, -1))
        self.decoders = nn.ModuleList(DoubleConv(c * 2 ** (k + 1), c * 2 ** k) for k in range(3, -1, -1))
        self.classifier = nn.Conv2d(c, out_channels, kernel_size=1)

    def forward(self, x):
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.upsamplers, self.decoders):
            x = dec(torch.concat([up(x), skips.pop()], dim=1))
        return self.classifier(x)
'''),
    # ---- dice_coefficient: mistakes
    wrong("dice_coefficient", "dice_over_the_whole_batch",
          ("pred = pred.float().flatten(start_dim=1)", "pred = pred.float().flatten()"),
          ("target = target.float().flatten(start_dim=1)", "target = target.float().flatten()"),
          ("(pred * target).sum(dim=1)", "(pred * target).sum()"),
          ("pred.sum(dim=1) + target.sum(dim=1)", "pred.sum() + target.sum()")),
    wrong("dice_coefficient", "dice_eps_only_in_denominator", (PER_IMAGE, "return (2 * intersection / (total + eps)).mean().item()")),
    wrong("dice_coefficient", "dice_thresholds_inside",
          ("pred = pred.float().flatten(start_dim=1)", "pred = (pred > 0.5).float().flatten(start_dim=1)")),
    # Another default eps than the task's 1e-6 (red team, 2026-12-06): only a nearly empty mask shows it.
    wrong("dice_coefficient", "dice_eps_default_changed", ("eps=1e-6", "eps=1e-4")),
    wrong("dice_coefficient", "dice_means_instead_of_sums",
          ("(pred * target).sum(dim=1)", "(pred * target).mean(dim=1)"),
          ("pred.sum(dim=1) + target.sum(dim=1)", "pred.mean(dim=1) + target.mean(dim=1)")),
    # ---- dice_coefficient: a right answer written differently
    right("dice_coefficient", "dice_loop_returns_tensor", '''
def dice_coefficient(pred, target, eps=1e-6):
    scores = []
    for p, t in zip(pred.double(), target.double()):
        scores.append((2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps))
    return torch.stack(scores).mean()
'''),
    # ---- train_unet: mistakes in the loss
    wrong("train_unet", "loss_bce_only", ("return bce + (1 - soft_dice.mean())", "return bce")),
    wrong("train_unet", "loss_bce_on_sigmoid",
          ("bce = F.binary_cross_entropy_with_logits(logits, targets)",
           "bce = F.binary_cross_entropy(torch.sigmoid(logits), targets)")),
    wrong("train_unet", "loss_dice_over_the_whole_batch",
          (SOFT_DICE, "soft_dice = (2 * (probs * targets).sum() + 1) / (probs.sum() + targets.sum() + 1)")),
    # Found by make mutants: a smoothing term other than the task's + 1, invisible on large lungs, decisive
    # on an empty mask (a tiny epsilon scores a perfect empty prediction as a total miss).
    wrong("train_unet", "loss_soft_dice_epsilon_smoothing",
          (SOFT_DICE, "soft_dice = (2 * (probs * targets).sum(dim=1) + 1e-6) / (probs.sum(dim=1) + targets.sum(dim=1) + 1e-6)")),
    wrong("train_unet", "train_loss_arguments_swapped",
          ("loss = dice_bce_loss(model(images), masks)", "loss = dice_bce_loss(masks, model(images))")),
    # ---- train_unet: mistakes in the loop
    wrong("train_unet", "train_checkpoint_not_copied",
          (BEST, "best_dice, best_state = val_dice, model.state_dict()")),
    wrong("train_unet", "train_mode_set_once",
          ("    for epoch in progress:\n        model.train()\n", "    model.train()\n    for epoch in progress:\n")),
    wrong("train_unet", "train_with_adam", ("torch.optim.AdamW(", "torch.optim.Adam(")),
    wrong("train_unet", "train_never_steps", ("            optimizer.step()\n", "")),
    # Nothing moved to `device` (red team, 2026-12-06): runs on a CPU grader, fails on a GPU.
    wrong("train_unet", "train_model_not_moved", ("    model = model.to(device)\n", "")),
    wrong("train_unet", "train_batches_not_moved", ("            images, masks = images.to(device), masks.to(device)\n", "")),
    # Passes every check before training (they run a tiny model for 1-3 epochs) but accumulates the
    # gradients of every batch so far: measured test Dice 0.84, below the floor. Graded up to that
    # test: the ResNet-encoder U-Net, trained next with the same loop, would fail its floor too.
    Case("train_no_zero_grad", "train_unet", mistake(TRAIN, ("            optimizer.zero_grad()\n", "")),
         right=False, stop_after="test_train_unet_dice"),
    # A new optimiser every epoch (its moments start again), and the mean of the batches' mean losses
    # for the history (red team, 2026-12-06: one epoch and equal batches could not tell them apart).
    wrong("train_unet", "train_new_optimiser_every_epoch",
          ("    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)\n", ""),
          ("        model.train()\n", "        model.train()\n        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)\n")),
    wrong("train_unet", "train_loss_mean_of_batch_means",
          ("            total += loss.item() * len(images)\n            seen += len(images)",
           "            total += loss.item()\n            seen += 1")),
    # ---- train_unet: right answers written differently
    right("train_unet", "train_deepcopy_model_bce_module", '''
bce_loss = nn.BCEWithLogitsLoss()


def dice_bce_loss(logits, targets):
    p = logits.sigmoid()
    dims = (1, 2, 3)
    dice = (2 * (p * targets).sum(dims) + 1.0) / (p.sum(dims) + targets.sum(dims) + 1.0)
    return bce_loss(logits, targets) + 1 - dice.mean()


def train_unet(model, train_loader, val_loader, epochs, lr, device):
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    history = {"train_loss": [], "val_dice": []}
    best_model, best = None, float("-inf")
    for epoch in tqdm(range(epochs)):
        model.train()
        losses = []
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            loss = dice_bce_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.extend([loss.item()] * x.shape[0])
        history["train_loss"].append(sum(losses) / len(losses))
        score = evaluate_dice(model, val_loader, device)
        history["val_dice"].append(score)
        if score > best:
            best, best_model = score, copy.deepcopy(model)
    return best_model, history
'''),
    right("train_unet", "train_saves_best_state_to_file", '''
from torch.optim import AdamW


def dice_bce_loss(logits, targets):
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="mean")
    probs = torch.sigmoid(logits)
    inter = torch.einsum("bchw,bchw->b", probs, targets)
    dice = (2 * inter + 1) / (probs.sum((1, 2, 3)) + targets.sum((1, 2, 3)) + 1)
    return bce + (1 - dice).mean()


def train_unet(model, train_loader, val_loader, epochs, lr, device):
    import tempfile, os
    model = model.to(device)
    optimizer = AdamW(model.parameters(), lr)
    history = {"train_loss": [], "val_dice": []}
    path = os.path.join(tempfile.mkdtemp(), "best.pt")
    best = -1
    for epoch in tqdm(range(epochs), desc="epochs"):
        model.train()
        running = 0.0
        for images, masks in train_loader:
            optimizer.zero_grad()
            loss = dice_bce_loss(model(images.to(device)), masks.to(device))
            loss.backward()
            optimizer.step()
            running += loss.item() * images.size(0)
        history["train_loss"].append(running / len(train_loader.dataset))
        history["val_dice"].append(evaluate_dice(model, val_loader, device))
        if history["val_dice"][-1] > best:
            best = history["val_dice"][-1]
            torch.save(model.state_dict(), path)
    model.load_state_dict(torch.load(path))
    return model, history
'''),
]
