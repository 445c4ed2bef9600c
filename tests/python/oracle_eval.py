"""Independent recomputation of `gunlearn eval`'s headline numbers on the embedded digits data.

Written from ../shared/SPEC.md §1 (splits) and §6 (accuracies, SVC attack), not from gunlearn's
code: the images come from scikit-learn's own copy of the digits data, the splits from NumPy's
legacy RandomState, the forward pass from the PyTorch ResNet of bench/reference.py (loading the
weights that `gunlearn export-torch` wrote), the attack from scikit-learn's SVC.

Usage: oracle_eval.py CASES.json OUT.json
  CASES.json: a list of {"name", "weights" (a torch.save state dict), "val_set_seed", "seed",
  "forget": {"kind": "class", "class": k, "count": n or null} | {"kind": "random", "fraction": f}}.
  OUT.json: per case name, the splits (indices into the 1 437 digits training images, or the
  360 test images), correct counts and sizes per split, accuracies (%), both SVC protocols' scores
  per feature kind with float32 features, the smallest |decision value| among each attack's
  targets, the same scores with float64 and torch-float32 features (`other_precisions`; see
  `feature`), and p_y of the forget and test samples.
"""
import json
import os
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.svm import SVC

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from reference import build  # noqa: E402

NUM_CLASSES = 10
KINDS = ["correctness", "confidence", "entropy", "m_entropy", "prob"]
LOG_FLOOR = 1e-30


def digits():
    """(train pixels u8 N×64, train labels, test pixels, test labels): gunlearn's documented split
    of the 1 797 digits, RandomState(0).permutation, first 80 % train, each part in index order;
    pixels 0..16 scaled to u8 by round(v·255/16) (no value lands on .5 but v = 8: 127.5 → 128)."""
    d = load_digits()
    x = np.floor(d.data * 255.0 / 16.0 + 0.5).astype(np.uint8)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(y))
    cut = len(y) * 4 // 5
    tr, te = np.sort(perm[:cut]), np.sort(perm[cut:])
    return x[tr], y[tr], x[te], y[te]


def splits(train_labels, test_labels, val_set_seed, seed, forget):
    """SPEC §1: validation split class by class with one RandomState(val_set_seed); the forget
    set with RandomState(seed − 1), from train positions; retain = train \\ forget."""
    rs = np.random.RandomState(val_set_seed)
    val = []
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(train_labels == c)
        val.extend(rs.choice(members, int(np.floor(0.1 * len(members))), replace=False).tolist())
    in_val = np.zeros(len(train_labels), bool)
    in_val[val] = True
    train = np.flatnonzero(~in_val)
    removed = None
    frs = np.random.RandomState(seed - 1)
    if forget["kind"] == "random":
        k = int(np.floor(forget["fraction"] * len(train)))
        positions = frs.choice(range(len(train)), k, replace=False)
    else:
        k = forget["class"]
        positions = np.flatnonzero(train_labels[train] == k)
        n = forget["count"] if forget["count"] is not None else len(positions)
        if n == len(positions):
            removed = k
        positions = frs.choice(positions, n, replace=False)
    forget_idx = np.sort(train[positions])
    retain = np.setdiff1d(train, forget_idx)
    test = np.flatnonzero(test_labels != removed) if removed is not None else np.arange(len(test_labels))
    return {"train": train, "val": np.array(val), "forget": forget_idx, "retain": retain, "test": test}


def softmax(model, pixels):
    """Eval-mode softmax (float32) of all `pixels` (N×64 u8) in one batch, pixels / 255."""
    x = torch.from_numpy(pixels.astype(np.float32) / np.float32(255.0)).view(-1, 1, 8, 8)
    with torch.no_grad():
        logits, _ = model(x)
        return torch.softmax(logits, dim=1).numpy()


def feature(kind, p, y, precision="float32"):
    """SPEC §6's per-sample features of float32 softmax rows `p`.

    `precision` says how they reach the SVC: "float32" (the default, what the test compares):
    computed in float64 and rounded to float32, as gunlearn does and as the reference hands
    sklearn its features (float32 tensors, which SVC.fit widens to float64); "float64": the
    float64 values unrounded; "torch32": computed in float32 arithmetic with torch, as the
    reference's code computes them. The last two are reported, not compared: the SVC's result
    depends on its input's last bits at the scale of libsvm's stopping tolerance (gap 1e-3)."""
    if precision == "torch32":
        t, yt = torch.from_numpy(p), torch.from_numpy(y)
        py = t.gather(1, yt[:, None])[:, 0]
        if kind == "correctness":
            v = (t.argmax(1) == yt).float()
        elif kind == "confidence":
            v = py
        elif kind == "entropy":
            v = -(t * t.clamp_min(LOG_FLOOR).log()).sum(1)
        elif kind == "m_entropy":
            rest = t * (1.0 - t).clamp_min(LOG_FLOOR).log()
            rest[torch.arange(len(y)), yt] = 0.0
            v = -(1.0 - py) * py.clamp_min(LOG_FLOOR).log() - rest.sum(1)
        else:
            return t.numpy().astype(np.float64)
        return v.numpy().astype(np.float64)[:, None]
    p64 = p.astype(np.float64)
    py = p64[np.arange(len(y)), y]
    if kind == "correctness":
        v = (np.argmax(p, axis=1) == y).astype(np.float64)[:, None]
    elif kind == "confidence":
        v = py[:, None]
    elif kind == "entropy":
        v = (-(p64 * np.log(np.maximum(p64, LOG_FLOOR))).sum(1))[:, None]
    elif kind == "m_entropy":
        rest = p64 * np.log(np.maximum(1.0 - p64, LOG_FLOOR))
        rest[np.arange(len(y)), y] = 0.0
        v = (-(1.0 - py) * np.log(np.maximum(py, LOG_FLOOR)) - rest.sum(1))[:, None]
    else:
        v = p64
    return v.astype(np.float32).astype(np.float64) if precision == "float32" else v


def attack(kind, members, non_members, targets, precision):
    """RBF SVC(C=3, gamma='auto') on shadow members (1) vs non-members (0); predictions and the
    smallest |decision value| for each target set."""
    xm, xn = feature(kind, *members, precision), feature(kind, *non_members, precision)
    x = np.concatenate([xm, xn])
    y = np.concatenate([np.ones(len(xm)), np.zeros(len(xn))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    out = []
    for t in targets:
        xt = feature(kind, *t, precision)
        out.append((clf.predict(xt), float(np.abs(clf.decision_function(xt)).min())))
    return out


def evaluate(case, data):
    xtr, ytr, xte, yte = data
    s = splits(ytr, yte, case["val_set_seed"], case["seed"], case["forget"])
    model = build("resnet20", NUM_CLASSES, 1, [0.0], [1.0])
    state = torch.load(case["weights"], weights_only=True)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    model.eval()
    p_train, p_test = softmax(model, xtr), softmax(model, xte)
    probs = {k: (p_train[v], ytr[v]) for k, v in s.items() if k != "test"}
    probs["test"] = (p_test[s["test"]], yte[s["test"]])
    correct = {k: int((np.argmax(p, 1) == y).sum()) for k, (p, y) in probs.items()}
    sizes = {k: len(v) for k, v in s.items()}
    acc = {k: 100.0 * correct[k] / sizes[k] for k in s}

    (pr, yr), (pt, yt), (pf, yf) = probs["retain"], probs["test"], probs["forget"]
    n, h = len(yt), len(yt) // 2
    scores = {}
    for precision in ["float32", "float64", "torch32"]:
        efficacy, privacy, margins = {}, {}, {}
        for kind in KINDS:
            [(pred, m)] = attack(kind, (pr[:n], yr[:n]), (pt, yt), [(pf, yf)], precision)
            efficacy[kind] = float((pred == 0).mean())
            margins["efficacy." + kind] = m
            [(pm, m1), (pn, m2)] = attack(
                kind, (pr[:h], yr[:h]), (pt[:h], yt[:h]), [(pr[h:], yr[h:]), (pt[h:], yt[h:])], precision
            )
            privacy[kind] = float(((pm == 1).mean() + (pn == 0).mean()) / 2)
            margins["privacy." + kind] = min(m1, m2)
        scores[precision] = {"SVC_MIA_forget_efficacy": efficacy, "SVC_MIA_training_privacy": privacy, "min_abs_decision": margins}
    efficacy = scores["float32"]["SVC_MIA_forget_efficacy"]
    return {
        "splits": {k: v.tolist() for k, v in s.items()},
        "correct": correct,
        "sizes": sizes,
        "accuracy": acc,
        "UA": 100.0 - acc["forget"],
        "MIA_efficacy": 100.0 * efficacy["confidence"],
        **scores["float32"],
        "other_precisions": {k: scores[k] for k in ["float64", "torch32"]},
        "confidence": {
            "forget": pf[np.arange(len(yf)), yf].astype(np.float64).tolist(),
            "test": pt[np.arange(len(yt)), yt].astype(np.float64).tolist(),
        },
        "normalize": [float(state["normalize.mean"][0]), float(state["normalize.std"][0])],
        "train_pixel_mean_std": [float((xtr / 255.0).mean()), float((xtr / 255.0).std())],
    }


def main():
    torch.set_num_threads(1)
    cases_path, out_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)
    data = digits()
    out = {c["name"]: evaluate(c, data) for c in cases}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
