"""VGG-16-BN side of tests/model_vgg.rs (the reference module is bench/reference.py's VGG16BN,
built like the reference's `vgg16_bn`).

Usage:
  vgg_ref.py init NUM_CLASSES IN_CHANNELS SEED OUT.json
      build a fresh reference model with its own init (torch.manual_seed(SEED)) and write
      `num_parameters` (sum of numel over model.parameters()) and, per parameter,
      [numel, mean, std (unbiased), max |value|] under `stats`.
  vgg_ref.py keys ... | vgg_ref.py run ...
      the commands of resnet_ref.py (state-dict keys; parity run on our weights), with ARCH
      vgg16_bn.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resnet_ref  # noqa: E402


def init_stats(ncls, cin, seed, out):
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    model = resnet_ref.ResNet("vgg16_bn", ncls, cin)
    stats = {}
    for name, p in model.named_parameters():
        p = p.detach().double()
        std = p.std().item() if p.numel() > 1 else 0.0
        stats[name] = [p.numel(), p.mean().item(), std, p.abs().max().item()]
    with open(out, "w") as f:
        json.dump({"num_parameters": sum(p.numel() for p in model.parameters()), "stats": stats}, f)


def main():
    if sys.argv[1] == "init":
        init_stats(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        resnet_ref.main()


if __name__ == "__main__":
    main()
