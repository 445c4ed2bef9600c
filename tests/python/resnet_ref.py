"""Reference CIFAR ResNet (torchvision layout + NormalizeByChannelMeanStd) for the Rust parity tests;
ARCH may be any name bench/reference.py's `build` knows (vgg16_bn too, see vgg_ref.py).

Usage:
  resnet_ref.py keys ARCH NUM_CLASSES IN_CHANNELS OUT.json
      write the state-dict keys (and shapes) of a freshly built reference model.
  resnet_ref.py run ARCH NUM_CLASSES IN_CHANNELS WEIGHTS.safetensors INPUT.safetensors OUT.safetensors
      load OUR weights by name, run the tensor `input` in eval mode then in train mode, and write
      `logits_eval`, `features_eval`, `logits_train`, `features_train` and the BatchNorm running
      statistics after the train pass (`after.<name>`).
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file


# The one PyTorch definition of the reference ResNet lives in bench/reference.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from reference import build  # noqa: E402


def ResNet(arch, num_classes, in_channels):
    """The reference network (ResNet or VGG) with placeholder normalisation buffers (the tests load ours)."""
    return build(arch, num_classes, in_channels, [0.5] * in_channels, [0.25] * in_channels)


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
