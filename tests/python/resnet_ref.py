"""Reference CIFAR ResNet (torchvision layout + NormalizeByChannelMeanStd) for the Rust parity tests.

Usage:
  resnet_ref.py keys ARCH NUM_CLASSES IN_CHANNELS OUT.json
      write the state-dict keys (and shapes) of a freshly built reference model.
  resnet_ref.py run ARCH NUM_CLASSES IN_CHANNELS WEIGHTS.safetensors INPUT.safetensors OUT.safetensors
      load OUR weights by name, run the tensor `input` in eval mode then in train mode, and write
      `logits_eval`, `features_eval`, `logits_train`, `features_train` and the BatchNorm running
      statistics after the train pass (`after.<name>`).
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class NormalizeByChannelMeanStd(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, arch, num_classes, in_channels):
        super().__init__()
        widths, blocks = {"resnet18": ([64, 128, 256, 512], 2), "resnet20": ([16, 32, 64], 3)}[arch]
        self.normalize = NormalizeByChannelMeanStd([0.5] * in_channels, [0.25] * in_channels)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        cin = widths[0]
        for i, w in enumerate(widths):
            layer = []
            for b in range(blocks):
                stride = 2 if i > 0 and b == 0 else 1
                layer.append(BasicBlock(cin, w, stride))
                cin = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.nstages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.normalize(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.nstages):
            x = getattr(self, f"layer{i + 1}")(x)
        features = torch.flatten(self.avgpool(x), 1)
        return self.fc(features), features


def main():
    torch.set_num_threads(2)
    cmd, arch, ncls, cin = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = ResNet(arch, ncls, cin)
    if cmd == "keys":
        keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        with open(sys.argv[5], "w") as f:
            json.dump(keys, f)
        return
    weights, inp, out = sys.argv[5], sys.argv[6], sys.argv[7]
    sd = load_file(weights)
    result = model.load_state_dict(sd, strict=False)
    bad_missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if bad_missing or result.unexpected_keys:
        sys.exit(f"state dict mismatch: missing {bad_missing}, unexpected {result.unexpected_keys}")
    x = load_file(inp)["input"]
    res = {}
    model.eval()
    with torch.no_grad():
        res["logits_eval"], res["features_eval"] = model(x)
        model.train()
        res["logits_train"], res["features_train"] = model(x)
    for k, v in model.state_dict().items():
        if "running" in k:
            res["after." + k] = v
    save_file({k: v.contiguous() for k, v in res.items()}, out)


if __name__ == "__main__":
    main()
