"""Times an evaluation pass in PyTorch; prints one JSON line. Used by `gunlearn bench eval`.

From N uint8 CIFAR-shaped images in host memory: copy to the device, eval-mode softmax in
batches, top-1 accuracy, and the membership-inference features of SPEC §6 (correctness,
confidence, entropy, modified entropy, probabilities) on the CPU, as gunlearn does.
"""
import argparse
import json

import torch

from reference import bench_setup, build, time_median

LOG_FLOOR = 1e-30

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--n", type=int, required=True)
p.add_argument("--batch", type=int, default=512)
a, dev = bench_setup(p)
model = build(a.arch).to(dev).eval()
images = torch.randint(0, 256, (a.n, 3, 32, 32), dtype=torch.uint8)
labels = torch.randint(0, 10, (a.n,))


def ln(v):
    return v.clamp_min(LOG_FLOOR).log()


def evaluate():
    with torch.no_grad():
        on_dev = images.to(dev)
        parts = [model(on_dev[i:i + a.batch].float() / 255)[0].softmax(-1) for i in range(0, a.n, a.batch)]
        probs = torch.cat(parts).cpu()
    acc = (probs.argmax(1) == labels).double().mean().item() * 100
    pr = probs.double()
    py = pr.gather(1, labels[:, None])[:, 0]
    correctness = (probs.argmax(1) == labels).double()
    entropy = -(pr * ln(pr)).sum(1)
    rest = (pr * ln(1 - pr)).sum(1) - py * ln(1 - py)
    m_entropy = -(1 - py) * ln(py) - rest
    feats = [correctness, py, entropy, m_entropy, probs]
    return acc, sum(float(f.sum()) for f in feats)


median = time_median(evaluate, a.warmup, a.steps, dev)
print(json.dumps({"arch": a.arch, "n": a.n, "seconds": median, "images_per_s": a.n / median}))
