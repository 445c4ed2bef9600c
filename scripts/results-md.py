#!/usr/bin/env python3
"""Writes the "Earlier comparison" section of docs/results.md from the run folders of
scripts/fashion-mnist-results.sh.

Usage: scripts/results-md.py RUNS_DIR | scripts/replace-section.py docs/results.md "## Earlier comparison"

Every number in the page comes from the runs: the tables are `gunlearn report`'s own output
(RUNS_DIR/<scenario>/table.md), the settings and the observations are read from each run's
eval_result.json and unlearn_log.csv. Nothing here is typed by hand.
"""
import csv
import os
import sys
from datetime import date

from page_facts import commit, load, machine

SCENARIOS = [("classwise", "Class-wise forgetting (whole class)"), ("random", "Random forgetting (10 %)")]


def runs_of(scenario_dir):
    """method -> eval_result.json of the run folders in scenario_dir."""
    out = {}
    for name in sorted(os.listdir(scenario_dir)):
        p = os.path.join(scenario_dir, name, "eval_result.json")
        if os.path.isfile(p):
            out[name] = load(p)
    return out


def table_order(table_path, runs):
    """The run folders in the order `gunlearn report` listed their methods."""
    rows = [line for line in open(table_path).read().splitlines() if line.startswith("|")]
    labels = [line.split("|")[1].strip() for line in rows[2:]]
    order = []
    for label in labels:
        for m in runs:
            if m not in order and (label == m or label.startswith(m + " (")
                                   or (m == "retrain" and label == "Retrain")):
                order.append(m)
    return order + [m for m in runs if m not in order]


def gap(r, ref):
    keys = ["UA", "MIA_efficacy", "RA", "TA"]
    return sum(abs(r[k] - ref[k]) for k in keys) / 4


def settings_line(r):
    c = r.get("config", {})
    ran = c.get("ran", {})
    parts = []
    epochs = c.get("unlearn_epochs")
    if epochs:
        parts.append(f"lr {c.get('unlearn_lr'):g}, {epochs} epoch{'s' if epochs != 1 else ''}")
    else:
        parts.append("one-shot" if r["method"] not in ("raw",) else "—")
    for k in ("alpha", "mask_ratio", "saliency_entries", "fgsm_step", "kd_T", "gamma", "msteps"):
        if k in ran:
            v = ran[k]
            parts.append(f"{k} {v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{k} {v}")
    settings = c.get("settings", {})
    if r["method"] == "Gan":
        if settings.get("stop_iter") is not None and r["forget"]["kind"] == "class":
            parts.append(f"stop-iter {settings['stop_iter']}, then lr {settings.get('stop_unlearn_lr'):g}")
        parts.append(f"attacker pre-training {settings.get('attacker_iters')} iterations")
    aug = [k.replace("_augmented", "") for k, v in ran.items() if k.endswith("_augmented") and v]
    parts.append("augmented: " + (", ".join(aug) if aug else "none"))
    return "; ".join(parts)


def gan_log_summary(run_dir):
    """Retain accuracy and attacker accuracy over the adversarial (β = 1) iterations."""
    path = os.path.join(run_dir, "unlearn_log.csv")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    adv = [r for r in rows if float(r["beta"]) > 0]
    if not adv:
        return None
    ra = [float(r["retain_acc"]) for r in adv]
    aa = [float(r["attacker_acc"]) for r in adv]
    return len(adv), len(rows), min(ra), ra[0], min(aa), max(aa)


def main():
    root = sys.argv[1]
    scale = open(os.path.join(root, "scale.txt")).read().strip()
    original = load(os.path.join(root, "original", "model.json"))
    acc = original["accuracy"]
    p = print
    p("## Earlier comparison: an original that does not memorise (Fashion-MNIST, ResNet-20, every method)")
    p()
    p(f"Section generated {date.today().isoformat()} (commit {commit()}) from the runs under "
      f"`{root}`, made on {machine()} with 2 libtorch threads by")
    p()
    p("```sh")
    p("scripts/fetch-data.sh fashion-mnist")
    p("scripts/fashion-mnist-results.sh     # resumable; runs every method, then rewrites this section")
    p("```")
    p()
    p("RTE is wall-clock under whatever else the machine was running; compare it within one table.")
    p()
    p("### What was scaled down")
    p()
    p(f"`{scale}` (reference, SPEC §3–§5: CIFAR-10, 45 000 / 5 000 / 10 000 images, ResNet-18, "
      "182 / 160 epochs, batch 256, Gan 3 epochs with 1 000 attacker pre-training iterations).")
    p()
    gap_tt = acc["train"] - acc["test"]
    memorises = acc["train"] >= 99.5
    p(f"The original model reaches train {acc['train']:.2f} %, val {acc['val']:.2f} %, test "
      f"{acc['test']:.2f} % (train − test {gap_tt:.2f} points). "
      + ("It memorises its training set, as the paper's models do (train 100 %, test ≈ 94 %)."
         if memorises else
         "It does not memorise its training set (train accuracy below 99.5 %), so a random "
         "forget sample looks like a test sample before anything is forgotten: random "
         "forgetting cannot rank methods here (the paper's models reach train 100 %, test "
         "≈ 94 %). Class-wise forgetting can."))
    for scenario, title in SCENARIOS:
        d = os.path.join(root, scenario)
        runs = runs_of(d)
        if "retrain" not in runs:
            continue
        ref = runs["retrain"]
        p()
        p(f"### {title}")
        p()
        p(open(os.path.join(d, "table.md")).read().strip())
        p()
        ranked = sorted(
            (gap(r, ref), m) for m, r in runs.items() if m not in ("retrain", "raw")
        )
        best = ranked[0]
        gan_rank = next((i + 1 for i, (_, m) in enumerate(ranked) if m == "Gan"), None)
        p(f"Closest to Retrain: **{best[1]}** (Avg. gap {best[0]:.2f}); the original model "
          f"(raw) is at {gap(runs['raw'], ref):.2f}."
          + (f" Gan ranks {gan_rank} of {len(ranked)} (gap {gap(runs['Gan'], ref):.2f})."
             if gan_rank else ""))
        slow = [(r["RTE_seconds"] / ref["RTE_seconds"], m) for m, r in runs.items()
                if m not in ("retrain", "raw") and r.get("RTE_seconds") and ref.get("RTE_seconds")]
        if slow:
            slow.sort()
            p(f"RTE as a fraction of Retrain's: from {slow[0][0]:.2f} ({slow[0][1]}) to "
              f"{slow[-1][0]:.2f} ({slow[-1][1]}).")
        g = gan_log_summary(os.path.join(d, "Gan"))
        if g:
            n_adv, n_all, ra_min, ra_first, aa_min, aa_max = g
            p(f"Gan's log: {n_adv} adversarial iterations of {n_all}; retain-batch accuracy "
              f"{ra_first:.1f} % at the first and {ra_min:.1f} % at its lowest; the attacker's "
              f"batch accuracy between {aa_min:.1f} and {aa_max:.1f} %.")
        p()
        p("| method | settings (from eval_result.json) |")
        p("|---|---|")
        for m in table_order(os.path.join(d, "table.md"), runs):
            p(f"| {m} | {settings_line(runs[m])} |")
    long_dir = [x for x in sorted(os.listdir(root)) if x.startswith("classwise-gan")]
    for x in long_dir:
        r_path = os.path.join(root, x, "Gan", "eval_result.json")
        ref_path = os.path.join(root, "classwise", "retrain", "eval_result.json")
        if os.path.isfile(r_path) and os.path.isfile(ref_path):
            r, ref = load(r_path), load(ref_path)
            p()
            p(f"### Class-wise Gan with {r['config'].get('unlearn_epochs')} epochs")
            p()
            p(f"Same flags as the class-wise Gan row, more epochs (`{x}/Gan`): UA {r['UA']:.2f}, "
              f"MIA-efficacy {r['MIA_efficacy']:.2f}, RA {r['RA']:.2f}, TA {r['TA']:.2f}, "
              f"Avg. gap {gap(r, ref):.2f}, RTE {r['RTE_seconds']:.1f} s.")
    grid = os.path.join(root, "alpha-grid", "table.md")
    if os.path.isfile(grid):
        p()
        p("### How FF's and IU's default α were chosen")
        p()
        p("`scripts/alpha-grid.sh` (same data, original model and Retrain runs; the score is the "
          "mean |Δ| to Retrain over UA, RA, MIA-efficacy and *validation* accuracy — the test set "
          "is never used to choose):")
        p()
        p(open(grid).read().strip())
    p()
    p("Figures (per scenario, `gunlearn report`'s own): `gap.png` and `mia_confidence.png` in the "
      "scenario's run folder; copies: [class-wise gap](figures/fashion-mnist-classwise-gap.png), "
      "[random gap](figures/fashion-mnist-random-gap.png), "
      "[class-wise MIA view](figures/fashion-mnist-classwise-mia.png), "
      "[random MIA view](figures/fashion-mnist-random-mia.png).")


if __name__ == "__main__":
    main()
