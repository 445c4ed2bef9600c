"""PyTorch side of tests/unlearn_gan_parity.rs: one or more SPEC §5 iterations with bench/reference.py.

Usage: gan_step_ref.py DIR
  DIR/config.json          {"arch", "num_classes", "in_channels", "mean", "std", "lr", "momentum",
                            "weight_decay", "beta", "iterations", "threads", "channels_last"}
  DIR/defender.safetensors our defender's variables (PyTorch state-dict names)
  DIR/attacker.safetensors our attacker's variables
  DIR/inputs.safetensors   retain/forget/val `*_images`, `*_labels`, `noise_forget`, `noise_val`,
                           `probe` (attacker input rows for the output check)
writes DIR/out.safetensors:
  probe_eval, probe_train          attacker outputs on `probe` (on a copy, dropout 0)
  rows_forget, rows_val            attacker inputs of the first iteration (on a copy of D)
  losses.I                         [attacker, L_cls, L_adv, L_bt, total] of iteration I
  defender.I.NAME, attacker.I.NAME every state-dict entry after iteration I
"""
import copy
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from reference import ATTACKER_LR, Attacker, attacker_inputs, build, gan_iteration  # noqa: E402


def load_strict(module, path):
    result = module.load_state_dict(load_file(path), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        sys.exit(f"{path}: state dict mismatch: missing {missing}, unexpected {result.unexpected_keys}")


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    torch.set_num_threads(cfg["threads"])
    model = build(cfg["arch"], cfg["num_classes"], cfg["in_channels"], tuple(cfg["mean"]), tuple(cfg["std"]))
    load_strict(model, os.path.join(d, "defender.safetensors"))
    if cfg.get("channels_last"):
        # As gunlearn's --layout channels-last: the normalised input is stored channels-last and
        # the convolutions, BatchNorm and sums keep that layout.
        model.normalize.register_forward_hook(lambda m, i, o: o.contiguous(memory_format=torch.channels_last))
    # Dropout masks cannot be matched across implementations: 0 on both sides.
    attacker = Attacker(cfg["num_classes"], dropout=0.0)
    load_strict(attacker, os.path.join(d, "attacker.safetensors"))
    x = load_file(os.path.join(d, "inputs.safetensors"))
    out = {}

    probe = copy.deepcopy(attacker)
    with torch.no_grad():
        out["probe_eval"] = probe.eval()(x["probe"])
        out["probe_train"] = probe.train()(x["probe"])
    with torch.no_grad():
        d_copy = copy.deepcopy(model).train()
        out["rows_forget"], _ = attacker_inputs(d_copy, x["forget_images"], x["forget_labels"], x["noise_forget"])
        out["rows_val"], _ = attacker_inputs(d_copy, x["val_images"], x["val_labels"], x["noise_val"])

    opt_d = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    opt_a = torch.optim.Adam(attacker.parameters(), lr=ATTACKER_LR)
    for i in range(cfg["iterations"]):
        s = gan_iteration(
            model, attacker, opt_d, opt_a,
            (x["retain_images"], x["retain_labels"]),
            (x["forget_images"], x["forget_labels"]),
            (x["val_images"], x["val_labels"]),
            x["noise_forget"], x["noise_val"], beta=cfg["beta"],
        )
        keys = ["attacker_loss", "retain_loss", "adv_loss", "bt_loss", "total_loss"]
        out[f"losses.{i}"] = torch.tensor([s[k] for k in keys], dtype=torch.float64)
        for name, t in model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                out[f"defender.{i}.{name}"] = t.clone()
        for name, t in attacker.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                out[f"attacker.{i}.{name}"] = t.clone()
    save_file({k: v.detach().contiguous() for k, v in out.items()}, os.path.join(d, "out.safetensors"))


if __name__ == "__main__":
    main()
