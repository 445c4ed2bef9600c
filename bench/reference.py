"""PyTorch implementation of the reference's networks and steps, for benchmarks and parity tests.

Written from ../shared/SPEC.md (the reference code base is not available here): the CIFAR
ResNet-18 / ResNet-20 with torchvision state-dict names and a `normalize` layer, VGG-16-BN as
the reference's models/VGG.py defines it (its layers looked up in OPTML-Group/Unlearn-Sparse),
and one SGD training step. gunlearn's benchmarks time the same work here and in Rust, in the
same command.
"""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class NormalizeByChannelMeanStd(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem, no max-pool; returns (logits, features)."""

    def __init__(self, widths, blocks, num_classes, in_channels, mean, std):
        super().__init__()
        self.normalize = NormalizeByChannelMeanStd(mean, std)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        inplanes = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layers = []
            for b in range(n):
                stride = 1 if (i == 0 or b > 0) else 2
                layers.append(BasicBlock(inplanes, w, stride))
                inplanes = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.num_stages = len(widths)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(features), features


class VGG16BN(nn.Module):
    """VGG-16-BN as the reference's `vgg16_bn` (OPTML-Group/Unlearn-Sparse, models/VGG.py):
    configuration "D" without its last max-pool (13 bias-free conv3x3 -> BN -> ReLU, 4 pools),
    AdaptiveAvgPool2d(2), then Linear(2048, 256) -> ReLU -> Linear(256, 256) -> ReLU ->
    Linear(256, C). Returns (logits, features), the features being the last Linear's input."""

    CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

    def __init__(self, num_classes, in_channels, mean, std):
        super().__init__()
        self.normalize = NormalizeByChannelMeanStd(mean, std)
        layers, cin = [], in_channels
        for v in self.CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(cin * 4, 256), nn.ReLU(True), nn.Linear(256, 256), nn.ReLU(True), nn.Linear(256, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(self.normalize(x))), 1)
        features = self.classifier[:4](x)
        return self.classifier[4](features), features


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def build(arch, num_classes=10, in_channels=3, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    if arch == "resnet18":
        return ResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes, in_channels, mean, std)
    if arch == "resnet20":
        return ResNet((16, 32, 64), (3, 3, 3), num_classes, in_channels, mean, std)
    if arch == "vgg16_bn":
        return VGG16BN(num_classes, in_channels, mean, std)
    raise ValueError(f"unknown arch {arch}")


def train_step(model, optimizer, images, labels):
    logits, _ = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


# --- Adversarial unlearning (SPEC §5) ------------------------------------------------------

SENSITIVITY_COPIES = 10
SENSITIVITY_SIGMA = 1e-3
BT_WEIGHT = 0.001
ADV_WEIGHT = 0.9
BT_OFF_DIAGONAL = 5e-3
ATTACKER_LR = 1e-3


class Attacker(nn.Module):
    """The membership-inference attacker of SPEC §5: BatchNorm1d(3C), one token per class
    (x[t], x[C+t], x[2C+t]), Linear(3→64), GELU, 3 post-norm transformer encoder layers
    (batch first: attention across the C class tokens), Linear(64C→64), ReLU, Linear(64→2)."""

    def __init__(self, num_classes, dropout=0.2):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm1d(3 * num_classes)
        self.fc1 = nn.Linear(3, 64)
        layer = nn.TransformerEncoderLayer(
            d_model=64, nhead=4, dim_feedforward=128, dropout=dropout, activation="gelu",
            layer_norm_eps=1e-5, batch_first=True, norm_first=False,
        )
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False)
        self.fc2 = nn.Linear(64 * num_classes, 64)
        self.fc3 = nn.Linear(64, 2)

    def forward(self, x):
        x = self.bn(x)
        tokens = x.view(-1, 3, self.num_classes).transpose(1, 2)
        h = F.gelu(self.fc1(tokens))
        h = self.transformer_encoder(h)
        return self.fc3(F.relu(self.fc2(torch.flatten(h, 1))))


def sensitivity_noise(images):
    """σ·N(0, 1) for m noisy copies of `images`, stacked copy-major."""
    return torch.randn((SENSITIVITY_COPIES * images.shape[0],) + tuple(images.shape[1:]), device=images.device) * SENSITIVITY_SIGMA


def attacker_inputs(model, images, labels, noise):
    """Rows [z, onehot(y), s] (attached to D's graph) and D's features; D in train mode."""
    b = images.shape[0]
    logits, features = model(images)
    noisy_logits, _ = model(images.repeat(SENSITIVITY_COPIES, 1, 1, 1) + noise)
    c = logits.shape[1]
    sensitivity = (noisy_logits.view(SENSITIVITY_COPIES, b, c) - logits.unsqueeze(0)).abs().mean(0) / SENSITIVITY_SIGMA
    onehot = F.one_hot(labels, c).float()
    return torch.cat([logits, onehot, sensitivity], 1), features


def barlow_twins(features_val, features_forget):
    """M = ĥ_Vᵀ ĥ_F / B on per-dimension standardised features (unbiased std);
    Σ_i (M_ii − 1)² + 5e-3 Σ_{i≠j} M_ij²."""
    def standardise(h):
        # As gunlearn: a feature constant over the batch (variance 0, where the plain formula
        # gives 0/0) becomes 0; the denominator is made safe before the square root so that its
        # gradient stays finite. Elsewhere this is (h - mean) / std(unbiased).
        var = h.var(0, keepdim=True, unbiased=True)
        varies = var > 0
        safe_var = torch.where(varies, var, torch.ones_like(var))
        return (h - h.mean(0, keepdim=True)) * varies.float() / safe_var.sqrt()

    b = features_val.shape[0]
    m = standardise(features_val).T @ standardise(features_forget) / b
    diagonal = torch.diagonal(m)
    on = (diagonal - 1).pow(2).sum()
    off = m.pow(2).sum() - diagonal.pow(2).sum()
    return on + BT_OFF_DIAGONAL * off


def gan_iteration(model, attacker, opt_d, opt_a, retain, forget, val, noise_forget, noise_val, beta=1.0):
    """One iteration of SPEC §5 (steps 2–3). `retain`/`forget`/`val` are (images, labels).
    Returns a dict of the losses (Python floats)."""
    model.train()
    attacker.train()
    rows_f, feat_f = attacker_inputs(model, forget[0], forget[1], noise_forget)
    rows_v, feat_v = attacker_inputs(model, val[0], val[1], noise_val)
    nf, nv = rows_f.shape[0], rows_v.shape[0]
    dev = rows_f.device
    members = torch.cat([torch.ones(nf, dtype=torch.long, device=dev), torch.zeros(nv, dtype=torch.long, device=dev)])
    # Attacker step on detached inputs.
    out = attacker(torch.cat([rows_f.detach(), rows_v.detach()], 0))
    attacker_loss = F.cross_entropy(out, members)
    opt_a.zero_grad()
    attacker_loss.backward()
    opt_a.step()
    # Defender step through the same forward passes, A's updated weights, flipped labels.
    retain_logits, _ = model(retain[0])
    l_cls = F.cross_entropy(retain_logits, retain[1])
    l_adv = F.cross_entropy(attacker(torch.cat([rows_f, rows_v], 0)), 1 - members)
    l_bt = barlow_twins(feat_v, feat_f)
    total = l_cls + beta * (BT_WEIGHT * l_bt + ADV_WEIGHT * l_adv)
    opt_d.zero_grad()
    total.backward()
    opt_d.step()
    return {
        "attacker_loss": attacker_loss.item(),
        "retain_loss": l_cls.item(),
        "adv_loss": l_adv.item(),
        "bt_loss": l_bt.item(),
        "total_loss": total.item(),
    }


def bench_setup(parser):
    """Adds the flags every timing script shares, parses them, and prepares torch like
    gunlearn's side of the benchmark: threads, seed, cuDNN benchmark mode. Returns (args, device)."""
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return args, device


def time_median(step, warmup, steps, device, after=None):
    """Median wall time of `step()` over `steps` timed calls after `warmup` untimed ones (CUDA
    synchronised around each). `after(i)` is called after each timed call, for extra counters."""
    times = []
    for i in range(warmup + max(steps, 1)):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            if after is not None:
                after(i)
    times.sort()
    return times[len(times) // 2]
