"""Times the reference training step in PyTorch; prints one JSON line. Used by `gunlearn bench train`."""
import argparse
import json
import time

import torch

from reference import build, train_step

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--device", default="cpu")
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True
model = build(a.arch).to(dev).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
images = torch.rand(a.batch, 3, 32, 32, device=dev)
labels = torch.randint(0, 10, (a.batch,), device=dev)
times = []
for i in range(a.warmup + a.steps):
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    train_step(model, opt, images, labels)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    if i >= a.warmup:
        times.append(time.perf_counter() - t)
times.sort()
median = times[len(times) // 2]
print(json.dumps({"arch": a.arch, "batch": a.batch, "seconds_per_step": median, "images_per_s": a.batch / median}))
