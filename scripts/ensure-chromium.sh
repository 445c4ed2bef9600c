#!/usr/bin/env bash
# Makes sure a Chromium that can run headless is installed (the report.html test renders the
# report with it). Idempotent: does nothing when /usr/bin/chromium already exists; otherwise
# installs the distribution's `chromium` package with apt-get (through sudo unless root).
# Prints what it does on stderr and the browser's path on stdout; exits non-zero when it cannot.
set -euo pipefail
browser=/usr/bin/chromium
if [ -x "$browser" ]; then
  echo "ensure-chromium: $browser is installed" >&2
  echo "$browser"
  exit 0
fi
command -v apt-get >/dev/null || {
  echo "ensure-chromium: $browser is missing and apt-get is not available: install Chromium by hand" >&2
  exit 1
}
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "ensure-chromium: $browser is missing, not root and no sudo: install the chromium package as root" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "ensure-chromium: $browser is missing; running ${sudo[*]:+${sudo[*]} }apt-get update && apt-get install -y chromium" >&2
"${sudo[@]}" apt-get update >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >&2
[ -x "$browser" ] || { echo "ensure-chromium: installed chromium but $browser is still missing" >&2; exit 1; }
echo "ensure-chromium: installed $("$browser" --version 2>/dev/null || echo chromium)" >&2
echo "$browser"
