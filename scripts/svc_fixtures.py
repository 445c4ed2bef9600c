"""Parity fixtures for gunlearn's SVC: fits scikit-learn SVC(C=3, gamma='auto') on MIA-like
feature sets and writes, per set NAME into OUT_DIR:

  NAME_x.f32 (n×d shadow features), NAME_y.u8 (1 = member), NAME_t.f32 (m×d targets),
  NAME_pred.u8 (sklearn target predictions), NAME_dec.f64 (sklearn target decision values),
plus manifest.json = [{"name", "n", "d", "m"}, ...]. All little-endian, row-major.

Usage: .venv/bin/python scripts/svc_fixtures.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
from sklearn.svm import SVC

C = 10


def softmax_probs(rng, n, member_boost, nonmember_boost):
    """Half members (even rows): the true-class logit is boosted more for members."""
    member = (np.arange(n) % 2 == 0)
    y = rng.integers(0, C, n)
    z = 1.5 * rng.standard_normal((n, C))
    boost = np.where(member, member_boost, nonmember_boost) + rng.standard_normal(n)
    z[np.arange(n), y] += boost
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p.astype(np.float32), y, member


def dirichlet_probs(rng, n):
    """Dirichlet draws: members concentrate on the label more than non-members."""
    member = (np.arange(n) % 2 == 0)
    y = rng.integers(0, C, n)
    p = np.empty((n, C))
    for k in range(n):
        a = np.full(C, 0.5)
        a[y[k]] = 8.0 if member[k] else 3.0
        p[k] = rng.dirichlet(a)
    return p.astype(np.float32), y, member


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261127)
    sets = []

    def add(name, x, member, t):
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = np.ascontiguousarray(t, dtype=np.float32)
        clf = SVC(C=3, gamma="auto").fit(x.astype(np.float64), member.astype(np.int64))
        pred = clf.predict(t.astype(np.float64))
        dec = clf.decision_function(t.astype(np.float64))
        x.tofile(os.path.join(out, f"{name}_x.f32"))
        member.astype(np.uint8).tofile(os.path.join(out, f"{name}_y.u8"))
        t.tofile(os.path.join(out, f"{name}_t.f32"))
        pred.astype(np.uint8).tofile(os.path.join(out, f"{name}_pred.u8"))
        dec.astype("<f8").tofile(os.path.join(out, f"{name}_dec.f64"))
        sets.append({"name": name, "n": int(x.shape[0]), "d": int(x.shape[1]), "m": int(t.shape[0])})

    # Softmax draws: 1-D confidence p_y and the 10-D probability vector.
    p, y, member = softmax_probs(rng, 3000, 5.0, 3.0)
    tp, ty, _ = softmax_probs(rng, 2000, 4.0, 4.0)
    add("confidence_1d", p[np.arange(len(y)), y][:, None], member, tp[np.arange(len(ty)), ty][:, None])
    add("prob_10d", p, member, tp)

    # Dirichlet draws, 10-D.
    p, y, member = dirichlet_probs(rng, 2500)
    tp, _, _ = dirichlet_probs(rng, 1500)
    add("dirichlet_10d", p, member, tp)

    # 0/1 correctness: only two distinct rows, so the kernel matrix is massively singular.
    n = 3000
    member = (np.arange(n) % 2 == 0)
    corr = np.where(member, rng.random(n) < 0.95, rng.random(n) < 0.7).astype(np.float32)
    tcorr = (rng.random(1000) < 0.8).astype(np.float32)
    add("correctness_1d", corr[:, None], member, tcorr[:, None])

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(sets, f)


if __name__ == "__main__":
    main()
