#!/usr/bin/env python3
"""Writes the jobs of the evidence study's hypothesis test and prints their job.json paths.

Usage: scripts/study-hypothesis.py STUDY_DIR EPOCHS

The hypothesis (docs/results.md): in class-wise forgetting the adversarial method's game
collapses the retain accuracy just before `--stop-iter`, and one epoch ends before plain
fine-tuning has repaired it; more epochs of that repair close its gap to Retrain. For every
class-wise Gan run of the dense sweep with the setting chosen on validation
(STUDY_DIR/report-dense/report.csv), the same job with `unlearn_epochs = EPOCHS` is written to
STUDY_DIR/hypothesis/<scenario>/seed<k>/<run with epochs<EPOCHS>>/job.json (its Retrain, attacker and
seeds are the dense sweep's). `gunlearn run-job` runs each; finished ones are skipped there.
"""
import csv
import glob
import json
import os
import sys


def chosen_settings(report_csv):
    """forget text -> the hyper-parameters of the Gan group kept by the choice on validation."""
    with open(report_csv) as f:
        return {r["forget"]: dict(kv.split("=", 1) for kv in r["hyperparameters"].split(";") if kv)
                for r in csv.DictReader(f) if r["method"] == "Gan" and r["model"] == "dense"}


def main():
    study, epochs = sys.argv[1], int(sys.argv[2])
    chosen = chosen_settings(os.path.join(study, "report-dense", "report.csv"))
    for path in sorted(glob.glob(os.path.join(study, "dense", "runs", "class*", "seed*", "Gan*",
                                              "job.json"))):
        job = json.load(open(path))
        result_path = os.path.join(os.path.dirname(path), "eval_result.json")
        if not os.path.isfile(result_path):
            continue
        result = json.load(open(result_path))
        f = result["forget"]
        forget = f"class {f['class']} ({f['count']} samples)"
        want = chosen.get(forget)
        if want is None or abs(float(want["unlearn_lr"]) - job["config"]["lr"]) > 1e-12:
            continue
        run = os.path.relpath(os.path.dirname(path), os.path.join(study, "dense", "runs"))
        out = os.path.join(study, "hypothesis", run.replace("-epochs1-", f"-epochs{epochs}-"))
        job["config"]["epochs"] = epochs
        job["save_dir"] = out
        os.makedirs(out, exist_ok=True)
        target = os.path.join(out, "job.json")
        if not os.path.isfile(target):
            with open(target + ".tmp", "w") as f_out:
                json.dump(job, f_out, indent=2)
            os.replace(target + ".tmp", target)
        print(target)


main()
