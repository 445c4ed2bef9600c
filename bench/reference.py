"""PyTorch implementation of the reference's networks and steps, for benchmarks and parity tests.

Written from ../shared/SPEC.md (the reference code base is not available here): the CIFAR
ResNet-18 / ResNet-20 with torchvision state-dict names and a `normalize` layer, and one SGD
training step. gunlearn's benchmarks time the same work here and in Rust, in the same command.
"""
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


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def build(arch, num_classes=10, in_channels=3, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    if arch == "resnet18":
        return ResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes, in_channels, mean, std)
    if arch == "resnet20":
        return ResNet((16, 32, 64), (3, 3, 3), num_classes, in_channels, mean, std)
    raise ValueError(f"unknown arch {arch}")


def train_step(model, optimizer, images, labels):
    logits, _ = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss
