"""PyTorch side of the import-torch / export-torch tests (resnet_ref.py's reference network:
a ResNet or vgg16_bn).

Usage:
  torch_io_ref.py save ARCH NUM_CLASSES IN_CHANNELS INPUT.safetensors DIR LAYOUT...
      for each LAYOUT, build a seeded reference model with non-trivial BatchNorm statistics and
      normalisation, write it with torch.save in LAYOUT to DIR/LAYOUT.pth.tar, and write its
      eval-mode logits on `input` (and, for pruned layouts, the masks as `mask.<conv>.weight`)
      to DIR/LAYOUT.result.safetensors. LAYOUT is one of:
        plain       model.state_dict()
        wrapped     {'state_dict': ..., 'epoch', 'optimizer', 'best_sa', ...} (the reference's .pth.tar)
        module      DataParallel's `module.` prefixes, wrapped
        pruned      torch.nn.utils.prune.global_unstructured at 60 % (weight_orig × weight_mask)
        legacy      plain, _use_new_zipfile_serialization=False
        protocol4   plain, pickle_protocol=4
  torch_io_ref.py load ARCH NUM_CLASSES IN_CHANNELS INPUT.safetensors FILE RESULT.safetensors [FILE RESULT...]
      strict load_state_dict of each FILE (.safetensors or a torch.save file, weights_only=True)
      into the reference model, then write its eval-mode logits on `input` to RESULT.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_ref import ResNet  # noqa: E402


def build(arch, ncls, cin):
    torch.manual_seed(7)
    model = ResNet(arch, ncls, cin)
    with torch.no_grad():
        model.normalize.mean.copy_(torch.linspace(0.3, 0.6, cin))
        model.normalize.std.copy_(torch.linspace(0.2, 0.3, cin))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.num_batches_tracked.fill_(17)
    return model


def logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)[0]


def save(layout, arch, ncls, cin, inp, out, result):
    model = build(arch, int(ncls), int(cin))
    x = load_file(inp)["input"]
    res = {}
    if layout == "pruned":
        convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
        prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=0.6)
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                res[f"mask.{name}.weight"] = m.weight_mask.clone()
    res["logits"] = logits(model, x)
    sd = model.state_dict()  # an OrderedDict with `_metadata`, as real files have
    if layout == "plain":
        torch.save(sd, out)
    elif layout == "legacy":
        torch.save(sd, out, _use_new_zipfile_serialization=False)
    elif layout == "protocol4":
        torch.save(sd, out, pickle_protocol=4)
    elif layout == "pruned":
        torch.save({"state_dict": sd, "epoch": 3}, out)
    elif layout in ("wrapped", "module"):
        # Snapshot: state_dict() shares storage with the live model, stepped below.
        sd = {k: v.clone() for k, v in sd.items()}
        if layout == "module":
            sd = {"module." + k: v for k, v in sd.items()}
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model.train()
        model(x)[0].sum().backward()
        opt.step()  # gives the optimizer state momentum tensors, as a real checkpoint has
        torch.save(
            {
                "state_dict": sd,
                "epoch": 182,
                "best_sa": 94.5,
                "optimizer": opt.state_dict(),
                "result": {"train_ta": [1.5, 2.5], "note": "ok", "flag": True, "big": 2**70},
                "tag": b"\x00\xffbytes",
            },
            out,
        )
    else:
        sys.exit(f"unknown layout {layout}")
    save_file({k: v.contiguous() for k, v in res.items()}, result)


def main():
    torch.set_num_threads(2)
    cmd = sys.argv[1]
    if cmd == "save":
        arch, ncls, cin, inp, outdir = sys.argv[2:7]
        for layout in sys.argv[7:]:
            save(layout, arch, ncls, cin, inp, f"{outdir}/{layout}.pth.tar", f"{outdir}/{layout}.result.safetensors")
    elif cmd == "load":
        arch, ncls, cin, inp = sys.argv[2:6]
        rest = sys.argv[6:]
        for path, result in zip(rest[::2], rest[1::2]):
            model = ResNet(arch, int(ncls), int(cin))
            if path.endswith(".safetensors"):
                sd = load_file(path)
            else:
                sd = torch.load(path, weights_only=True)
            model.load_state_dict(sd, strict=True)
            x = load_file(inp)["input"]
            save_file({"logits": logits(model, x).contiguous()}, result)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
