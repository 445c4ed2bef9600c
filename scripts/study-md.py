#!/usr/bin/env python3
"""Writes the evidence study's section of docs/results.md from its sweeps.

Usage: scripts/study-md.py STUDY_DIR COMMAND > section.md   (the data set is read from the runs)

STUDY_DIR holds the dense and pruned sweeps (`dense/`, `pruned/`) and `report/`, the output of
`gunlearn report STUDY_DIR/dense STUDY_DIR/pruned --select-on-validation`. The tables are that
report's own; every other number is read from the runs (model.json, pruning.json,
eval_result.json, unlearn_log.csv). Nothing here is typed by hand.
"""
import csv
import glob
import json
import os
import statistics
import sys
from datetime import date

from page_facts import chapter, commit, load, machine, number, sections_of, title_of

NAMES = {"retrain": "Retrain", "raw": "raw (original)"}


def scenario_key(result):
    """(model label, forget text) of an eval_result.json, as the report names them."""
    sparsity = result.get("sparsity", 0.0) or 0.0
    model = "dense" if sparsity <= 0 else f"pruned {round(sparsity, 1):g} %"
    f = result["forget"]
    if f["kind"] == "class":
        forget = f"class {f['class']} ({f['count']} samples)"
    else:
        forget = f"random {100 * f['fraction']:g} %"
    return model, forget


def matches(got, want):
    """Whether a config value is the one report.csv renders as `want`."""
    if want == "default":
        return got is None
    try:
        return abs(float(got) - float(want)) <= 1e-12 * max(1.0, abs(float(want)))
    except (TypeError, ValueError):
        pass
    if isinstance(got, str):
        return got == want
    return json.dumps(got, separators=(",", ":")) == want


def same_setting(config, hyper):
    """Whether a run's config has the group's hyper-parameters (`k=v;k=v` from report.csv)."""
    have = {}
    for key in ("unlearn_lr", "unlearn_epochs"):
        if key in config:
            have[key] = config[key]
    for k, v in (config.get("settings") or {}).items():
        if k not in ("seed", "lr", "epochs"):
            have[k] = v
    for item in filter(None, hyper.split(";")):
        k, v = item.split("=", 1)
        if not matches(have.get(k), v):
            return False
    return True


def gan_logs(study, row):
    """unlearn_log.csv rows of the Gan runs of this group."""
    logs = []
    for path in glob.glob(os.path.join(study, "*", "runs", "*", "seed*", "Gan*", "eval_result.json")):
        result = load(path)
        if scenario_key(result) != (row["model"], row["forget"]):
            continue
        if not same_setting(result.get("config", {}), row["hyperparameters"]):
            continue
        log_path = os.path.join(os.path.dirname(path), "unlearn_log.csv")
        if os.path.isfile(log_path):
            with open(log_path) as f:
                logs.append(list(csv.DictReader(f)))
    return logs


def gan_story(logs):
    """One sentence on the game, from its logs: attacker accuracy and the retain-accuracy dip."""
    rows = [r for log in logs for r in log if r.get("attacker_acc")]
    if not rows:
        return ""
    first = [float(log[0]["retain_acc"]) for log in logs if log]
    low = [min(float(r["retain_acc"]) for r in log) for log in logs if log]
    last = [statistics.mean(float(r["retain_acc"]) for r in log[-3:]) for log in logs if log]
    att = [float(r["attacker_acc"]) for r in rows]
    att_last = [statistics.mean(float(r["attacker_acc"]) for r in log[-3:]) for log in logs if log]
    iters = [len(log) for log in logs]
    return (
        f"In its logs ({len(logs)} runs, "
        f"{min(iters) if min(iters) == max(iters) else f'{min(iters)}–{max(iters)}'} "
        f"adversarial iterations each) the "
        f"attacker's batch accuracy ranges {min(att):.1f}–{max(att):.1f} % and ends at "
        f"{statistics.mean(att_last):.1f} % (50 % = it cannot tell forget from validation "
        f"samples); the defender's retain-batch accuracy starts at {statistics.mean(first):.1f} %, "
        f"dips to {statistics.mean(low):.1f} % and ends at {statistics.mean(last):.1f} % (mean of "
        f"the last three iterations)."
    )


def paragraph(study, title, rows):
    methods = [r for r in rows if r["method"] not in ("retrain",) and number(r["avg_gap_mean"]) is not None]
    if not methods:
        return "Only Retrain (or no run with a gap) has finished for this setting so far."
    retrain = next((r for r in rows if r["method"] == "retrain"), None)
    ranked = sorted(methods, key=lambda r: number(r["avg_gap_mean"]))
    unlearners = [r for r in ranked if r["method"] != "raw"]
    best = unlearners[0]
    raw = next((r for r in ranked if r["method"] == "raw"), None)
    gan = next((r for r in unlearners if r["method"] == "Gan"), None)
    n = best["n"]
    text = []
    gap = lambda r: f"{number(r['avg_gap_mean']):.2f}" + (
        f" ± {number(r['avg_gap_std']):.2f}" if r["avg_gap_std"] else "")
    text.append(f"Closest to Retrain: **{best['label']}** (Avg. gap {gap(best)} over {n} seeds)")
    if raw:
        text[-1] += f"; doing nothing (the original model) is at {gap(raw)}"
    text[-1] += "."
    if retrain and retrain["UA_mean"]:
        text.append(f"Retrain's own UA is {number(retrain['UA_mean']):.2f} and its MIA-efficacy "
                    f"{number(retrain['MIA_efficacy_mean']):.2f}.")
    if gan is None:
        text.append("The adversarial method has no finished run here yet.")
        return " ".join(text)
    rank = unlearners.index(gan) + 1
    if rank == 1:
        second = unlearners[1] if len(unlearners) > 1 else None
        verdict = "The adversarial method (Gan) lands closest to Retrain"
        if second:
            separated = (number(gan["avg_gap_mean"]) + (number(gan["avg_gap_std"]) or 0)
                         < number(second["avg_gap_mean"]) - (number(second["avg_gap_std"]) or 0))
            verdict += (f", ahead of {second['label']} ({gap(second)})"
                        + (" by more than one standard deviation of each." if separated else
                           "; the two are within one standard deviation of each other, so this "
                           "ranking is not settled at 3 seeds."))
        text.append(verdict)
    else:
        within = (number(gan["avg_gap_mean"]) - (number(gan["avg_gap_std"]) or 0)
                  <= number(best["avg_gap_mean"]) + (number(best["avg_gap_std"]) or 0))
        text.append(f"The adversarial method, {gan['label']}, ranks {rank} of "
                    f"{len(unlearners)} with {gap(gan)}"
                    + (", within one standard deviation of the closest." if within else
                       ", more than a standard deviation behind the closest."))
    if gan["RTE_fraction_mean"]:
        cheaper = [r for r in unlearners if r["RTE_fraction_mean"] and
                   number(r["RTE_fraction_mean"]) < number(gan["RTE_fraction_mean"]) and
                   number(r["avg_gap_mean"]) <= number(gan["avg_gap_mean"])]
        text.append(f"It costs {number(gan['RTE_fraction_mean']):.2f} of Retrain's time"
                    + (f"; {len(cheaper)} method(s) are both cheaper and at least as close "
                       f"({', '.join(r['label'] for r in cheaper)})." if cheaper else "."))
    story = gan_story(gan_logs(study, gan))
    if story:
        text.append(story)
    text.extend(identical_results(unlearners))
    return " ".join(text)


METRICS = ("UA", "MIA_efficacy", "RA", "TA")


def identical_results(rows):
    """A sentence for each pair of methods whose four metrics agree to the last printed digit
    (mean and std), with the reason where it is known: on a pruned model SalUn's saliency mask
    keeps every weight that can still move, so SalUn's update is RL's."""
    key = lambda r: tuple(r[f"{m}_{s}"] for m in METRICS for s in ("mean", "std"))
    sentences = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if key(a) != key(b) or not a["UA_mean"]:
                continue
            sentence = (f"{a['label']} and {b['label']} give identical UA, MIA-efficacy, RA and TA "
                        "here (mean and spread over the seeds)")
            if {a["method"], b["method"]} == {"RL", "SalUn"} and a["model"] != "dense":
                sentence += (": SalUn is RL restricted to the weights its saliency mask keeps (those "
                             "with the largest forget-loss gradient), and on this pruned model the "
                             "pruned weights have zero gradient, so the mask keeps every weight that "
                             "can still change and SalUn's update is RL's")
            sentences.append(sentence + ".")
    return sentences


def validation_gap(run, retrain):
    """Mean |Δ| to Retrain over UA, MIA-efficacy, RA and validation accuracy (no test set)."""
    a = [run["UA"], run["MIA_efficacy"], run["RA"], run["accuracy"]["val"]]
    b = [retrain["UA"], retrain["MIA_efficacy"], retrain["RA"], retrain["accuracy"]["val"]]
    return sum(abs(x - y) for x, y in zip(a, b)) / 4


def chosen_validation_gaps(report_md):
    """(method, section title) -> the validation gap of the setting chosen for it."""
    out = {}
    text = chapter(report_md, "Hyper-parameters chosen on validation")
    method = title = None
    for line in text.splitlines():
        if line.startswith("**"):
            method, _, title = line.partition("**, ")
            method, title = method.strip("*"), title.rstrip(":")
        elif line.startswith("|") and line.rstrip().endswith("chosen |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            try:
                out[(method, title)] = float(cells[1])
            except ValueError:
                pass
    return out


def mean_std(values):
    if len(values) > 1:
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
    return f"{values[0]:.2f}" if values else "n/a"


def hypothesis(study, dataset):
    """The hypothesis test's section: class-wise Gan, 1 epoch (chosen) against 2 epochs."""
    runs = sorted(glob.glob(os.path.join(study, "hypothesis", "class*", "seed*", "Gan*",
                                         "eval_result.json")))
    if not runs:
        return ""
    gaps = chosen_validation_gaps(os.path.join(study, "report-dense", "report.md"))
    rows, scenarios = [], {}
    for path in runs:
        longer = load(path)
        folder = os.path.dirname(path)
        rel = os.path.relpath(folder, os.path.join(study, "hypothesis"))
        scenario, seed, name = rel.split(os.sep)
        base = os.path.join(study, "dense", "runs", scenario, seed)
        one_name = next((n for n in os.listdir(base) if n.startswith("Gan")
                         and n.replace("-epochs1-", "-epochs2-") == name), None)
        retrain_path = os.path.join(base, "retrain", "eval_result.json")
        if one_name is None or not os.path.isfile(retrain_path):
            continue
        one = load(os.path.join(base, one_name, "eval_result.json"))
        retrain = load(retrain_path)
        entry = scenarios.setdefault(scenario_key(longer)[1], {"one": [], "two": [], "ra1": [],
                                                                "ra2": [], "rte1": [], "rte2": []})
        entry["one"].append(validation_gap(one, retrain))
        entry["two"].append(validation_gap(longer, retrain))
        entry["ra1"].append(one["RA"])
        entry["ra2"].append(longer["RA"])
        entry["rte1"].append(one["RTE_seconds"] / retrain["RTE_seconds"])
        entry["rte2"].append(longer["RTE_seconds"] / retrain["RTE_seconds"])
    lines = ["### Hypothesis test: does a longer repair phase close class-wise Gan's gap?\n",
             "In class-wise forgetting the game drives the attacker's accuracy up and the "
             "defender's retain accuracy down until `--stop-iter`; the remaining iterations of the "
             "one epoch fine-tune without the attacker terms (β = 0) and end before the retain "
             "accuracy has recovered (see the logs above). Tested on the dense model with the "
             "setting chosen on validation, judged on validation only (mean |Δ| to Retrain over "
             "UA, MIA-efficacy, RA and validation accuracy): the same runs with 2 epochs "
             "(`scripts/study-hypothesis.py`, same seeds, Retrain and attacker). Their RTE was measured "
             "in another run of the machine than the sweep's, beside other work: compare it with "
             "care.\n",
             "| forget | validation gap, 1 epoch | validation gap, 2 epochs | RA, 1 epoch | RA, 2 epochs "
             "| RTE / Retrain, 1 epoch | 2 epochs | closest other method on validation |",
             "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for forget, e in scenarios.items():
        title = f"{dataset}, forget {forget}"
        others = {m: g for (m, t), g in gaps.items() if t == title and m != "Gan"}
        best = min(others.items(), key=lambda kv: kv[1]) if others else None
        best_text = f"{best[0]} ({best[1]:.2f})" if best else "n/a"
        lines.append(f"| {forget} | {mean_std(e['one'])} | {mean_std(e['two'])} | "
                     f"{mean_std(e['ra1'])} | {mean_std(e['ra2'])} | {mean_std(e['rte1'])} | "
                     f"{mean_std(e['rte2'])} | {best_text} |")
        change = statistics.mean(e["two"]) - statistics.mean(e["one"])
        verdict = (f"{forget}: the second epoch {'lowers' if change < 0 else 'raises'} Gan's "
                   f"validation gap by {abs(change):.2f} points")
        if best:
            verdict += (", which " + ("brings it below" if statistics.mean(e["two"]) < best[1]
                                      else "leaves it above")
                        + f" the closest other method's ({best[0]}, {best[1]:.2f})")
        verdicts.append(verdict)
    lines.append("")
    lines.append("; ".join(verdicts) + ".")
    return "\n".join(lines) + "\n"


def main():
    study, command = sys.argv[1], sys.argv[2]
    report_dir = os.path.join(study, "report")
    report_md = os.path.join(report_dir, "report.md")
    with open(os.path.join(report_dir, "report.csv")) as f:
        rows = list(csv.DictReader(f))
    tables = sections_of(report_md)

    job = load(os.path.join(study, "dense", "original", "job.json"))
    dataset = job["data"]["dataset"]
    train_cfg = job["config"]
    some_run = next(iter(glob.glob(os.path.join(study, "dense", "runs", "*", "seed*", "raw",
                                                "eval_result.json"))), None)
    sizes = load(some_run)["sizes"] if some_run else {}
    print(f"## Evidence study on {dataset}: does adversarial unlearning land closest to Retrain?\n")
    print(f"Generated {date.today().isoformat()} (commit {commit()}) on {machine()}, from the sweeps "
          f"`examples/study-{dataset}.toml` (dense) and `examples/study-{dataset}-pruned.toml` "
          f"by\n")
    print(f"```sh\n{command}\n```\n")
    print(f"Scaled down to 2 CPU cores (reference, SPEC §3–§5: CIFAR-10, 45 000 / 5 000 / 10 000 "
          f"images, ResNet-18, 182 / 160 epochs, batch 256, Gan 3 epochs with 1 000 attacker "
          f"pre-training iterations): {dataset}, the first {job['data']['train_subset']} training "
          f"images ({sizes.get('train', '?')} train, {sizes.get('val', '?')} validation) and "
          f"{job['data']['test_subset']} test images, {job['arch']} "
          f"{'without augmentation' if train_cfg.get('augment') is None else 'with augmentation'}, "
          f"batch {train_cfg['batch_size']}, {train_cfg['epochs']} epochs at lr {train_cfg['lr']} "
          f"for the original and for Retrain; each method's epochs and Gan's attacker pre-training "
          f"as in the sweep file (every run's settings are in its `eval_result.json`). RTE is "
          f"wall-clock on one core per run with another run beside it; compare it within a "
          f"table.\n")

    progress = []
    for part in ("dense", "pruned"):
        planned = glob.glob(os.path.join(study, part, "runs", "*", "seed*", "*", "job.json"))
        done = [p for p in planned if os.path.isfile(os.path.join(os.path.dirname(p), "audit.json"))]
        progress.append(f"{part}: {len(done)} of {len(planned)} unlearning runs finished"
                        if planned else f"{part}: not started")
    print("**Completeness.** " + "; ".join(progress) + ". A sweep that is not finished continues "
          "where it stopped when the same command is started again; its tables below show the "
          "seeds finished so far (column n).\n")
    dense = os.path.join(study, "dense", "original", "model.json")
    if os.path.isfile(dense):
        acc = load(dense)["accuracy"]
        print(f"**The original models.** Dense: train {acc['train']:.2f} %, test {acc['test']:.2f} % "
              f"(train − test {acc['train'] - acc['test']:.2f} points; "
              + ("it memorises its training set, as the paper's models do)." if acc["train"] >= 99.5
                 else "it does **not** reach the 99.5 % train accuracy of a memorising model).")
              )
    pruning = os.path.join(study, "pruned", "pruned", "pruning.json")
    if os.path.isfile(pruning):
        states = load(pruning)["states"]
        d, p = states[0], states[-1]
        pmodel = load(os.path.join(study, "pruned", "pruned", f"state{len(states) - 1}", "model.json"))
        drop = d["test"] - p["test"]
        acc = pmodel["accuracy"]
        train = (f"train {acc['train']:.2f} %" if "train" in acc else
                 f"train {acc['train_augmented']:.2f} % (during its last epoch)")
        print(f"Pruned (OMP, rewound to epoch 8 and retrained): {p['sparsity']:.1f} % of the conv "
              f"weights are zero, {train}, test {p['test']:.2f} % against the dense state's "
              f"{d['test']:.2f} % (a drop of {drop:.2f} points"
              + ("; within 2 points)." if drop <= 2 else "; more than 2 points)."))
    print()
    print(f"**How each method's setting was chosen.** {len(set(r['method'] for r in rows)) - 2} methods, "
          "each with the same budget: two values of its most sensitive setting (learning rate, or α "
          "for FF and IU), run on every seed; per method and setting the value with the smallest mean "
          "gap to Retrain over UA, MIA-efficacy, RA and *validation* accuracy is kept "
          "(`gunlearn report --select-on-validation`). The test set plays no part in the choice. "
          "The candidates and their validation gaps are listed at the end of this section.\n")

    by_title = {}
    for r in rows:
        by_title.setdefault(title_of(r), []).append(r)
    for title, table in tables.items():
        if title not in by_title:
            continue
        print(f"### {title}\n")
        print("\n".join(table))
        print()
        print(paragraph(study, title, by_title[title]) + "\n")

    test = hypothesis(study, dataset)
    if test:
        print(test)
    chosen = chapter(report_md, "Hyper-parameters chosen on validation")
    if chosen:
        print("### Hyper-parameters chosen on validation\n")
        print(chosen + "\n")
    health = chapter(report_md, "Health checks")
    if health:
        print("### Health checks (from `gunlearn report`)\n")
        print(health + "\n")
    print(f"The gap to Retrain of every chosen setting (`gunlearn report`'s own figure): "
          f"[figures/study-{dataset}-gap.png](figures/study-{dataset}-gap.png).\n")
    print(f"Every run's folder (model, `eval_result.json`, `unlearn_log.csv`, `audit.json`) is under "
          f"`{study}`; `{report_dir}/report.html` has the per-setting gap charts, MIA confidence "
          f"histograms and training curves.")


main()
