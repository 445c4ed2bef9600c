"""What every generated section of docs/results.md says about where and from what it was made,
shared by scripts/results-md.py, scripts/audit-md.py, scripts/study-md.py and
scripts/study-v2-md.py, with the readers of a report's files they share."""
import json
import os
import platform
import subprocess


def load(path):
    """A JSON file, parsed."""
    with open(path) as f:
        return json.load(f)


def machine():
    """`N cores (CPU model), OS arch` of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.machine()}"


def commit():
    """The short hash of the checked-out commit, or `unknown`."""
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def sections_of(report_md):
    """title -> table lines, from report.md's `## title` sections."""
    out, title, lines = {}, None, []
    for line in open(report_md).read().splitlines():
        if line.startswith("## "):
            if title is not None:
                out[title] = lines
            title, lines = line[3:], []
        elif title is not None and line.startswith("|"):
            lines.append(line)
    if title is not None:
        out[title] = lines
    return out


def chapter(report_md, head):
    """The text of report.md's `## head` section, without its heading."""
    text = open(report_md).read()
    marker = f"\n## {head}\n"
    if marker not in text:
        return ""
    return text.split(marker, 1)[1].split("\n## ", 1)[0].strip()


def title_of(row):
    """The report's section title of a report.csv row."""
    if row["model"] == "dense":
        return f"{row['dataset']}, forget {row['forget']}"
    return f"{row['dataset']} ({row['model']}), forget {row['forget']}"


def number(text):
    """A report.csv cell as a number (None when empty)."""
    return float(text) if text not in ("", None) else None
