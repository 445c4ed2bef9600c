"""Times one adversarial-unlearning iteration (SPEC §5) in PyTorch; prints one JSON line.
Used by `gunlearn bench gan`. Fresh sensitivity noise is drawn inside the timed region, as the
reference does; the image batches are fixed tensors (data loading is < 0.1 % of an iteration)."""
import argparse
import json
import resource
import time

import torch

from reference import ATTACKER_LR, Attacker, build, gan_iteration, sensitivity_noise

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--steps", type=int, default=2)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--device", default="cpu")
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True
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
times, faults = [], []
for i in range(a.warmup + max(a.steps, 1)):
    if dev.type == "cuda":
        torch.cuda.synchronize()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter()
    gan_iteration(model, attacker, opt_d, opt_a, retain, forget, val, sensitivity_noise(forget[0]), sensitivity_noise(val[0]))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    if i >= a.warmup:
        times.append(time.perf_counter() - t)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
times.sort()
faults.sort()
median = times[len(times) // 2]
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({
    "arch": a.arch, "batch": a.batch, "seconds_per_step": median,
    "minor_faults_per_step": faults[len(faults) // 2], "peak_rss_gb": peak_gb,
}))
