"""Times the reference training step in PyTorch; prints one JSON line. Used by `gunlearn bench train`."""
import argparse
import json

import torch

from reference import bench_setup, build, time_median, train_step

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--batch", type=int, required=True)
a, dev = bench_setup(p)
model = build(a.arch).to(dev).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
images = torch.rand(a.batch, 3, 32, 32, device=dev)
labels = torch.randint(0, 10, (a.batch,), device=dev)
median = time_median(lambda: train_step(model, opt, images, labels), a.warmup, a.steps, dev)
print(json.dumps({"arch": a.arch, "batch": a.batch, "seconds_per_step": median, "images_per_s": a.batch / median}))
