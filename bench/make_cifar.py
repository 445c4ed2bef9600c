"""Writes a CIFAR-10-format binary folder of generated, learnable images (no download).

Usage: make_cifar.py OUT_DIR [--train N] [--test M] [--seed S]
Creates OUT_DIR/cifar-10-batches-bin/data_batch_1..5.bin (N records split over the five files)
and test_batch.bin (M records); each record is 1 label byte + 3072 pixel bytes (R, G, B planes
of 32×32). Each class has its own smooth colour pattern; images are that pattern shifted and
with noise, so a network can learn the classes but not perfectly.
"""
import argparse
import os

import numpy as np


def images(rng, patterns, labels):
    n = len(labels)
    base = patterns[labels].astype(np.float32)
    shift = rng.integers(-3, 4, size=(n, 2))
    for i in range(n):
        base[i] = np.roll(base[i], tuple(shift[i]), axis=(1, 2))
    noisy = base + rng.normal(0, 40, size=base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write(path, labels, pixels):
    rec = np.concatenate([labels.astype(np.uint8)[:, None], pixels.reshape(len(labels), -1)], axis=1)
    rec.tofile(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--train", type=int, default=50000)
    p.add_argument("--test", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.train < 5 or a.test < 1:
        raise SystemExit("--train must be at least 5 and --test at least 1")
    rng = np.random.default_rng(a.seed)
    y, x = np.mgrid[0:32, 0:32] / 32.0
    patterns = np.empty((10, 3, 32, 32), dtype=np.float32)
    for c in range(10):
        for ch in range(3):
            fy, fx, ph = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 6.3)]
            patterns[c, ch] = 128 + 90 * np.sin(2 * np.pi * (fy * y + fx * x) + ph)
    d = os.path.join(a.out, "cifar-10-batches-bin")
    os.makedirs(d, exist_ok=True)
    train_labels = rng.integers(0, 10, a.train)
    train_pixels = images(rng, patterns, train_labels)
    for k, part in enumerate(np.array_split(np.arange(a.train), 5)):
        write(os.path.join(d, f"data_batch_{k + 1}.bin"), train_labels[part], train_pixels[part])
    test_labels = rng.integers(0, 10, a.test)
    write(os.path.join(d, "test_batch.bin"), test_labels, images(rng, patterns, test_labels))
    print(f"{a.train} train and {a.test} test images -> {d}")


if __name__ == "__main__":
    main()
