#!/usr/bin/env python3
"""Writes the per-example audit section of docs/results.md from a `gunlearn audit` folder.

Usage: scripts/audit-md.py AUDIT_DIR COMMAND > section.md

Every number comes from AUDIT_DIR/audit_result.json (F, F_null, final score, U-LiRA, the
paired rankings) and from the eval_result.json of every pool run (the SVC attack's
MIA-efficacy, averaged over each method's N runs). Nothing here is typed by hand.
"""
import glob
import os
import sys
from datetime import date

from page_facts import commit, load, machine


def main():
    audit_dir, command = sys.argv[1], sys.argv[2]
    result = load(os.path.join(audit_dir, "audit_result.json"))
    pool = result["pool"]
    svc = {}
    for method in result["methods"]:
        if method == "retrain":
            dirs = glob.glob(os.path.join(pool, "methods", "retrain-*", "seed*"))
        else:
            dirs = glob.glob(os.path.join(pool, "methods", f"{method}-*", "seed*"))
        values = [load(os.path.join(d, "eval_result.json"))["MIA_efficacy"] for d in dirs
                  if os.path.isfile(os.path.join(d, "eval_result.json"))]
        svc[method] = sum(values) / len(values) if values else float("nan")
    retrain_dirs = glob.glob(os.path.join(pool, "retrain", "seed*"))
    svc_retrain = [load(os.path.join(d, "eval_result.json"))["MIA_efficacy"] for d in retrain_dirs]
    svc_ref = sum(svc_retrain) / len(svc_retrain)
    original = load(os.path.join(pool, "original", "model.json"))["accuracy"]

    print("## Per-example forgetting audit (digits)\n")
    print(f"Generated {date.today().isoformat()} (commit {commit()}) on {machine()}, by\n")
    print(f"```sh\n{command}\n```\n")
    print(f"N = {result['n']} models per pool, {len(result['forget_indices'])} forgotten training "
          f"images (random), the embedded digits data, ResNet-20; the original model: train "
          f"{original['train']:.2f} %, test {original['test']:.2f} %. `retrain` audited as a method "
          f"is a second draw of {result['n']} retrained models (other seeds): the perfect unlearner. "
          f"Scaled down from the challenge's 512 + 512 models: N, the data set and the model.\n")
    if original["train"] - original["test"] < 2.0:
        print(f"**Health check:** this original model does not memorise its training set (train − test "
              f"{original['train'] - original['test']:.2f} points < 2): forgotten samples look like unseen "
              f"ones before anything is forgotten, so these numbers cannot rank methods.\n")
    print("| method | F [95 % interval] | F_null | final score | U-LiRA AUC | SVC MIA-efficacy (mean of N runs; Retrain: "
          f"{svc_ref:.2f}) |")
    print("|---|---|---|---|---|---|")
    order = sorted(result["methods"].items(), key=lambda kv: -kv[1]["F"])
    for name, m in order:
        iv = m["F_interval"]
        print(f"| {name} | {m['F']:.3f} [{iv['lower']:.3f}, {iv['upper']:.3f}] | {m['F_null']:.3f} | "
              f"{m['final_score']:.3f} | {m['ulira']['auc']:.3f} | {svc[name]:.2f} |")
    print()
    ranks = []
    for a, b, cmp in result["rankings"]:
        word = {"first_better": f"{a} ranks above {b}", "second_better": f"{b} ranks above {a}",
                "not_separable": f"{a} and {b} are not separable at this N"}[cmp["ranking"]]
        ranks.append(word)
    print("Paired rankings (SPEC §6b.3): " + "; ".join(ranks) + ".\n")
    # Do the two attacks order the methods alike? Per-example: by F (higher = closer to retrained);
    # SVC: by |MIA-efficacy − Retrain's| (smaller = closer).
    methods = [n for n in result["methods"] if n != "retrain"]
    by_f = sorted(methods, key=lambda n: -result["methods"][n]["F"])
    by_svc = sorted(methods, key=lambda n: abs(svc[n] - svc_ref))
    same = by_f == by_svc
    print(f"Closest to Retrain first — by the per-example audit (F): {', '.join(by_f)}; by the SVC "
          f"attack (|MIA-efficacy − Retrain's|): {', '.join(by_svc)}. "
          + ("The two attacks rank these methods the same way." if same else
             "The two attacks rank these methods differently: the population attack averages over "
             "every sample with one classifier, the per-example audit asks of each forgotten "
             "sample whether unlearned models can be told from retrained ones.")
          + "\n")
    print(f"Per-example ε of each method: `{audit_dir}/epsilon_<method>.csv`; the page with the ε "
          f"histograms and the U-LiRA ROC: `{audit_dir}/audit_report.html`.")


main()
