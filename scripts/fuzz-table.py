"""Prints the results table of docs/fuzzing.md from the logs of scripts/fuzz-campaign.sh.

    python3 scripts/fuzz-table.py [--present] [LOGS]      (default /work/fuzz-logs)

One row per target log (LOGS/<target>.log): start time, seconds run, executions, executions
per second, inputs accepted and refused, distinct refusal shapes, crashes (panics, memory,
unnamed or unreadable errors, inconsistent values) and aborts (the child process died), and
whether the run finished. Targets without a log are listed as not run (left out with
--present, for a rerun of a few targets).
"""

import re
import sys
from pathlib import Path

TARGETS = ["idx", "gzip", "cifar-bin", "cifar-pickle", "mat5", "safetensors", "torch-pickle",
           "sweep-toml", "job-json", "audit-json"]


def fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def row(path):
    lines = path.read_text().splitlines()
    start = next((fields(l) for l in lines if l.startswith("START")), {})
    stats = [fields(l) for l in lines if l.startswith(("STATS", "DONE"))]
    summary = next((fields(l.split(" last=[")[0]) for l in lines if l.startswith("SUMMARY")), None)
    crashes = [l for l in lines if l.startswith("CRASH")]
    aborts = [l for l in crashes if "kind=abort" in l]
    last = stats[-1] if stats else {}
    if summary:
        execs, secs, status = int(summary["execs"]), float(summary["seconds"]), "finished"
    else:
        execs, secs, status = int(last.get("execs", 0)), float(last.get("elapsed", 0)), "running or stopped"
    return {
        "start": start.get("date", "?"),
        "seconds": secs,
        "execs": execs,
        "rate": execs / secs if secs else 0.0,
        "accepted": last.get("accepted", "?"),
        "refused": last.get("refused", "?"),
        "outcomes": last.get("outcomes", "?"),
        "crashes": len(crashes) - len(aborts),
        "aborts": len(aborts),
        "status": status,
        "crash_lines": crashes,
    }


def main():
    args = [a for a in sys.argv[1:] if a != "--present"]
    present = "--present" in sys.argv[1:]
    logs = Path(args[0] if args else "/work/fuzz-logs")
    print("| target | started (UTC) | seconds | executions | exec/s | accepted | refused "
          "| refusal shapes | crashes | aborts | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    found = []
    for t in TARGETS:
        p = logs / f"{t}.log"
        if not p.exists():
            if present:
                continue
            print(f"| {t} | — | — | — | — | — | — | — | — | — | not run |")
            continue
        r = row(p)
        found.extend(r["crash_lines"])
        print(f"| {t} | {r['start']} | {r['seconds']:.0f} | {r['execs']:,} | {r['rate']:,.0f} "
              f"| {r['accepted']} | {r['refused']} | {r['outcomes']} | {r['crashes']} "
              f"| {r['aborts']} | {r['status']} |".replace(",", " "))
    print()
    if found:
        print("Crashes:")
        for l in found:
            print(f"- `{l[:300]}`")
    else:
        print("No crash of any kind was found.")


if __name__ == "__main__":
    main()
