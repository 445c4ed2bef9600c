"""Times one adversarial-unlearning iteration (SPEC §5) in PyTorch; prints one JSON line.
Used by `gunlearn bench gan`. Fresh sensitivity noise is drawn inside the timed region, as the
reference does; the image batches are fixed tensors (data loading is < 0.1 % of an iteration)."""
import argparse
import json
import resource

import torch

from memory import memory_sampler, peak_rss_gb
from reference import ATTACKER_LR, Attacker, bench_setup, build, gan_iteration, sensitivity_noise, time_median

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--beta", type=float, default=1.0)
a, dev = bench_setup(p)
if dev.type == "cuda":
    # As gunlearn's Gan path: full FP32 (the sensitivity is a finite difference of step 1e-3).
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"
model = build(a.arch).to(dev).train()
attacker = Attacker(10).to(dev).train()
opt_d = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
opt_a = torch.optim.Adam(attacker.parameters(), lr=ATTACKER_LR)


def batch():
    return torch.rand(a.batch, 3, 32, 32, device=dev), torch.randint(0, 10, (a.batch,), device=dev)


retain, forget, val = batch(), batch(), batch()
faults = []
last = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt]


def count_faults(_):
    # Faults of the timed call (warm-up calls reset the baseline through `step`).
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - last[0])


def step():
    last[0] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    gan_iteration(model, attacker, opt_d, opt_a, retain, forget, val, sensitivity_noise(forget[0]), sensitivity_noise(val[0]), beta=a.beta)


sampled_peak, stop_sampler = memory_sampler()
median = time_median(step, a.warmup, a.steps, dev, after=count_faults)
if stop_sampler:
    stop_sampler()
faults.sort()
peak_gb = peak_rss_gb()
print(json.dumps({
    "arch": a.arch, "batch": a.batch, "seconds_per_step": median,
    "minor_faults_per_step": faults[len(faults) // 2], "peak_rss_gb": peak_gb,
    "sampled_peak": sampled_peak or None,
}))
