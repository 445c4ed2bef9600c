"""Reference for SPEC §6b.1 in plain NumPy, written from the spec text (not from the Rust).

    forgetting_ref.py IN.json OUT.json

IN holds synthetic cases; OUT gets, per case, the per-example epsilons (with their source),
F and the final score; F_null for the null case; logit-scaled confidences; a bootstrap
percentile interval; and U-LiRA scores (SPEC §6b.3) with scikit-learn's AUC and ROC. Rule rates are
evaluated by brute-force broadcasting over the whole threshold grid (the Rust side uses
binary search).
"""

import json
import math
import sys

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

DELTA = 1e-5
CAP = 50.0
PER_UNIT = 100
BUFFER = 2.0


def confidence(logits, y):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    p = np.exp(z)
    p = p / p.sum()
    p_y = p[y]
    q = np.delete(p, y).sum()
    return float(np.log(p_y + 1e-45) - np.log(q + 1e-45))


def rule_eps(fpr, fnr):
    """Vectorised step 5: +inf, NaN (= discarded) or the clipped epsilon."""
    out = np.full(fpr.shape, np.nan)
    both = (fpr == 0) & (fnr == 0)
    out[both] = np.inf
    ok = (fpr > 0) & (fnr > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1 - DELTA - fpr
        b = 1 - DELTA - fnr
        t1 = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)) - np.log(np.where(ok, fnr, 1.0)), -np.inf)
        t2 = np.where(b > 0, np.log(np.where(b > 0, b, 1.0)) - np.log(np.where(ok, fpr, 1.0)), -np.inf)
    t = np.maximum(t1, t2)
    good = ok & np.isfinite(t)
    out[good] = np.maximum(t[good], 0.0)
    return out


def epsilon(u, r):
    """One example: (epsilon, source)."""
    u = np.asarray(u, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    n = len(u)
    # 1. Positive = group with the larger median; R only if strictly larger.
    if np.median(r) > np.median(u):
        pos, neg = r, u
    else:
        pos, neg = u, r
    # 2. Range ratio.
    rp = pos.max() - pos.min()
    rn = neg.max() - neg.min()
    big, small = (rp, rn) if rp > rn else (rn, rp)
    if big == 0:
        return CAP, "both_ranges_zero"
    if small / big < 0.01:
        return CAP, "peaky_range"
    fprs, fnrs = [], []
    # 3. Single-threshold rules over the pooled values, positive iff c >= t.
    pooled = np.concatenate([pos, neg])
    lo, hi = pooled.min(), pooled.max()
    t = np.linspace(lo, hi, int(np.ceil((hi - lo) * PER_UNIT)))
    fnrs.append(np.sum(pos[:, None] < t[None, :], axis=0) / n)
    fprs.append(np.sum(neg[:, None] >= t[None, :], axis=0) / n)
    # 4. Double-threshold rules: positive = group with the smaller range (ties: the
    #    single-rule negative group), w = its range, m = its max.
    if rp >= rn:
        dpos, dneg = neg, pos
    else:
        dpos, dneg = pos, neg
    w = small
    r_lo = dpos.min() + w - BUFFER
    r_hi = dpos.max() + BUFFER
    rights = np.linspace(r_lo, r_hi, int(np.ceil((r_hi - r_lo) * PER_UNIT)))
    n_left = int(np.ceil(2 * BUFFER * PER_UNIT))
    lefts = np.concatenate([np.linspace(rr - w - BUFFER, rr - w + BUFFER, n_left) for rr in rights])
    rr = np.repeat(rights, n_left)
    inside_p = (lefts[None, :] <= dpos[:, None]) & (dpos[:, None] <= rr[None, :])
    inside_n = (lefts[None, :] <= dneg[:, None]) & (dneg[:, None] <= rr[None, :])
    fnrs.append(np.sum(~inside_p, axis=0) / n)
    fprs.append(np.sum(inside_n, axis=0) / n)
    # Rates are exact k/N fractions.
    fpr = np.concatenate(fprs)
    fnr = np.concatenate(fnrs)
    e = rule_eps(fpr, fnr)
    keep = e[~np.isnan(e)]
    if keep.size == 0:
        raise RuntimeError("no rule survived")
    return float(np.clip(keep.max(), 0.0, CAP)), "rules"


def points(eps, n):
    eps_max = math.ceil(math.log(n - 1))
    bins = []
    start = 0.0
    while start + 0.5 <= eps_max:
        bins.append(start)
        start += 0.5
    out = []
    for e in eps:
        h = 0.0
        for k, s in enumerate(bins):
            if e < s + 0.5:
                h = 2.0 ** (-k)
                break
        out.append(h)
    return out


def forget_score(u_mx, r_mx):
    """u_mx, r_mx: [models, examples]."""
    n, s = u_mx.shape
    res = [epsilon(u_mx[:, x], r_mx[:, x]) for x in range(s)]
    eps = [e for e, _ in res]
    f = 0.0
    for h in points(eps, n):
        f += h
    return eps, [src for _, src in res], f / s


def ulira_scores(u, r):
    """Leave-one-out Gaussian log-likelihood ratios (SPEC §6b.3), [examples, N] each."""
    s, n = u.shape
    pos = np.empty((s, n))
    neg = np.empty((s, n))

    def score(c, fin, fout):
        if n < 64:
            ss = np.sum((fin - fin.mean()) ** 2) + np.sum((fout - fout.mean()) ** 2)
            sd_in = sd_out = np.sqrt(ss / (len(fin) + len(fout)))
        else:
            sd_in, sd_out = np.std(fin), np.std(fout)
        sd_in, sd_out = max(sd_in, 1e-3), max(sd_out, 1e-3)
        return (norm.logpdf(c, np.median(fin), sd_in)
                - norm.logpdf(c, np.median(fout), sd_out))

    for x in range(s):
        for i in range(n):
            pos[x, i] = score(u[x, i], np.delete(u[x], i), r[x])
            neg[x, i] = score(r[x, i], u[x], np.delete(r[x], i))
    return pos, neg


def main():
    cfg = json.load(open(sys.argv[1]))
    out = {"cases": []}
    for case in cfg["cases"]:
        u = np.asarray(case["unlearned"], dtype=np.float64).T
        r = np.asarray(case["retrained"], dtype=np.float64).T
        eps, src, f = forget_score(u, r)
        fin = f * (np.mean(case["ra_u"]) / np.mean(case["ra_r"])) * (
            np.mean(case["ta_u"]) / np.mean(case["ta_r"]))
        out["cases"].append({"name": case["name"], "epsilon": eps, "source": src,
                             "F": f, "final_score": float(fin)})
    nc = cfg["null"]
    u = np.asarray(nc["unlearned"], dtype=np.float64)  # [examples, N]
    r = np.asarray(nc["retrained"], dtype=np.float64)
    s, n = u.shape
    rs = np.random.RandomState(nc["seed"])
    fs = []
    for _ in range(nc["relabellings"]):
        nu = np.empty((n, s))
        nr = np.empty((n, s))
        for x in range(s):
            pooled = np.concatenate([u[x], r[x]])
            perm = rs.permutation(2 * n)
            nu[:, x] = pooled[perm[:n]]
            nr[:, x] = pooled[perm[n:]]
        fs.append(forget_score(nu, nr)[2])
    out["null"] = {"per_relabelling": fs, "F_null": float(np.mean(fs))}
    out["confidences"] = [confidence(c["logits"], c["label"]) for c in cfg["logits"]]
    bc = cfg["bootstrap"]
    vals = np.asarray(bc["values"], dtype=np.float64)
    rs = np.random.RandomState(bc["seed"])
    reps = [np.mean(vals[rs.randint(0, len(vals), size=len(vals))]) for _ in range(bc["count"])]
    q = (1.0 - bc["level"]) / 2.0
    out["bootstrap"] = [float(np.quantile(reps, q)), float(np.quantile(reps, 1.0 - q))]
    out["ulira"] = []
    for uc in cfg["ulira"]:
        u = np.asarray(uc["unlearned"], dtype=np.float64)  # [examples, N]
        r = np.asarray(uc["retrained"], dtype=np.float64)
        pos, neg = ulira_scores(u, r)
        labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
        scores = np.concatenate([pos.ravel(), neg.ravel()])
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        acc = ((pos > 0).sum(axis=1) + (neg <= 0).sum(axis=1)) / (2 * u.shape[1])
        out["ulira"].append({"unlearned_scores": pos.tolist(), "retrained_scores": neg.tolist(),
                             "auc": float(roc_auc_score(labels, scores)),
                             "accuracy": float(np.mean(acc)),
                             "tpr_at_1pct_fpr": float(tpr[np.where(fpr < 0.01)[0][-1]])})
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
