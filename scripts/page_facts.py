"""What every generated section of docs/results.md says about where and from what it was made,
shared by scripts/results-md.py, scripts/audit-md.py and scripts/study-md.py."""
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
