#!/usr/bin/env python3
"""Replaces one `## ` section of a Markdown page with the text on stdin.

Usage: scripts/replace-section.py PAGE "## Heading start" [--first] < section.md

The section is the lines from the first heading that starts with the given text up to the next
`## ` heading. Where there is none yet, the text is appended, or with --first put before the
page's first `## ` section. The generating scripts of docs/results.md each own one section.
"""
import sys

path, head = sys.argv[1], sys.argv[2]
first = "--first" in sys.argv[3:]
section = sys.stdin.read().rstrip() + "\n"
text = open(path).read()
start = text.find("\n" + head)
if start >= 0:
    start += 1
    end = text.find("\n## ", start + len(head))
    text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
elif first and "\n## " in text:
    at = text.index("\n## ") + 1
    text = text[:at] + section + "\n" + text[at:]
else:
    text = text.rstrip() + "\n\n" + section
with open(path + ".tmp", "w") as f:
    f.write(text)
import os
os.replace(path + ".tmp", path)
