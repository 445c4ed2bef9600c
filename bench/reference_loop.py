"""Times the reference implementation's own adversarial loop, imported from a checkout the user
provides (`GUNLEARN_REFERENCE_LOOP=DIR gunlearn bench gan`; nothing of it is shipped here), on
the inputs `gan_step.py` times: fixed random CIFAR-shaped batches of size B for retain, forget
and validation, the checkout's own ResNet (`utils.model_dict`) and attacker (`utils.GanAttacker`).

The loop is the checkout's `Gan(dataloaders, modelD, modelA, args)` from `unlearn/Gan.py`, run
for warm-up + timed iterations (one per retain batch) with `train_attacker` off: it loads its
attacker from `attackers/attacker_pretrained_cifar10checkpoint.pth.tar` under the working
directory, so a fresh attacker is saved there in a temporary folder. An iteration is timed from
the retain loader handing out its batch to it handing out the next (the last one: to the loop's
return), so the reference's own printing and `.item()` calls count, as they do in its runs.
β = 0 (`--beta 0`) is the reference's class-wise path after `--stop-iter`. Prints one JSON line
like gan_step.py's; `--check --arch a,b` only imports the checkout and says which of the
architectures its loop can run."""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("--checkout", required=True)
p.add_argument("--check", action="store_true")
p.add_argument("--arch", default="resnet18", help="with --check: a comma-separated list")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--beta", type=float, default=1.0)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--device", default="cpu")
a = p.parse_args()
if a.device == "cpu":
    # The reference moves everything to cuda:0 whenever a GPU is visible.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import torch  # noqa: E402  (after CUDA_VISIBLE_DEVICES)

from memory import memory_sampler, peak_rss_gb  # noqa: E402

CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def load_checkout(path):
    """The checkout's `utils` module and its `unlearn/Gan.py` (loaded as a file, so the
    `unlearn` package's other methods and their dependencies are not needed)."""
    gan_file = os.path.join(path, "unlearn", "Gan.py")
    for f in (gan_file, os.path.join(path, "utils.py")):
        if not os.path.isfile(f):
            sys.exit(f"reference_loop.py: {f} not found: GUNLEARN_REFERENCE_LOOP must be a checkout of the reference implementation")
    sys.path.insert(0, path)
    with contextlib.redirect_stdout(io.StringIO()):
        import utils
        spec = importlib.util.spec_from_file_location("reference_gan", gan_file)
        gan = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gan)
    for name in ("model_dict", "GanAttacker", "NormalizeByChannelMeanStd"):
        if not hasattr(utils, name):
            sys.exit(f"reference_loop.py: {path}/utils.py has no {name}")
    return utils, gan.Gan


# gunlearn's architecture names where the reference's differ (its CIFAR ResNet-20 is "resnet20s").
REFERENCE_NAMES = {"resnet20": "resnet20s"}


def build_model(name):
    """The checkout's model for gunlearn's architecture `name`, or a reason it cannot run the
    reference's loop (which unpacks `logits, features = netD(x)`)."""
    arch = name if name in utils.model_dict else REFERENCE_NAMES.get(name, name)
    if arch not in utils.model_dict:
        return None, f"the checkout has no model {name!r} (it has {sorted(utils.model_dict)})"
    model = utils.model_dict[arch](num_classes=10)
    model.normalize = utils.NormalizeByChannelMeanStd(mean=CIFAR10_MEAN, std=CIFAR10_STD)
    with torch.no_grad():
        out = model.eval()(torch.rand(2, 3, 32, 32))
    if not (isinstance(out, tuple) and len(out) == 2):
        return None, f"its {arch} returns no (logits, features) pair, which its Gan loop needs"
    return model.train(), None


utils, reference_gan = load_checkout(os.path.abspath(a.checkout))
if a.check:
    # Which of the requested architectures the reference's loop can run.
    runnable, skipped = [], {}
    for name in a.arch.split(","):
        model, reason = build_model(name)
        if model is None:
            skipped[name] = reason
        else:
            runnable.append(name)
    print(json.dumps({"ok": True, "runnable": runnable, "skipped": skipped}))
    sys.exit(0)
if a.beta not in (0.0, 1.0):
    sys.exit("reference_loop.py: the reference's loop runs β = 1, or β = 0 after --stop-iter; --beta must be 0 or 1")
model, reason = build_model(a.arch)
if model is None:
    sys.exit(f"reference_loop.py: {a.arch}: {reason}")

torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device("cuda:0" if a.device.startswith("cuda") else "cpu")
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"
model = model.to(dev)
attacker = utils.GanAttacker(30).to(dev)


def batch():
    return torch.rand(a.batch, 3, 32, 32), torch.randint(0, 10, (a.batch,))


class OneBatch:
    """`next(iter(loader))` of a shuffled loader: the reference draws forget and validation
    batches that way."""

    def __init__(self, b):
        self.b = b

    def __iter__(self):
        return iter([self.b])


class TimedRetain:
    """The retain loader: the same batch for every iteration, with the time and the minor page
    faults at which each iteration starts."""

    def __init__(self, b, n):
        self.b, self.n, self.marks = b, n, []

    def __len__(self):
        return self.n

    def mark(self):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt))

    def __iter__(self):
        for _ in range(self.n):
            self.mark()
            yield self.b


retain = TimedRetain(batch(), a.warmup + max(a.steps, 1))
loaders = {"retain": retain, "forget": OneBatch(batch()), "val": OneBatch(batch()), "train": OneBatch(batch())}
args = argparse.Namespace(
    unlearn_epochs=1, unlearn_lr=0.01, momentum=0.9, weight_decay=5e-4, train_attacker=False,
    num_classes=10, dataset="cifar10", seed=0,
    # β = 0 from the first iteration: a class-wise request with --stop-iter -1.
    class_to_replace=None if a.beta == 1.0 else 0, stop_iter=-1, stop_unlearn_lr=0.01,
)
with tempfile.TemporaryDirectory() as work:
    os.makedirs(os.path.join(work, "attackers"))
    torch.save({"state_dict": attacker.state_dict()},
               os.path.join(work, "attackers", "attacker_pretrained_cifar10checkpoint.pth.tar"))
    os.chdir(work)
    sampled_peak, stop_sampler = memory_sampler()
    with contextlib.redirect_stdout(io.StringIO()):
        reference_gan(loaders, model, attacker, args)
    retain.mark()
    if stop_sampler:
        stop_sampler()

spans = [(t1 - t0, f1 - f0) for (t0, f0), (t1, f1) in zip(retain.marks, retain.marks[1:])][a.warmup:]
times, faults = sorted(s for s, _ in spans), sorted(f for _, f in spans)
print(json.dumps({
    "arch": a.arch, "batch": a.batch, "seconds_per_step": times[len(times) // 2],
    "minor_faults_per_step": faults[len(faults) // 2], "peak_rss_gb": peak_rss_gb(),
    "sampled_peak": sampled_peak or None,
}))
