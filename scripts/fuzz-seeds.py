"""Writes the binary fuzz seeds under tests/fuzz-seeds/ from the embedded digits data set
(assets/digits.csv.gz), each with the real writer of its format: IDX files as MNIST's are laid
out (raw and gzipped), CIFAR binary records, CIFAR python-version pickles (pickle.dump of a
NumPy array, protocols 2 and 5), SVHN MAT-files (scipy.io.savemat, plain and compressed), a
safetensors state dict (safetensors.torch.save_file) and torch.save files (zip and legacy).
Every file is read back with its format's own reader before the script exits.

    python3 scripts/fuzz-seeds.py [OUT]     (default tests/fuzz-seeds; run by fuzz-seeds.sh)
"""

import gzip
import io
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import scipy.io
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fuzz-seeds"


def digits():
    """The 1 797 8×8 digits, pixels scaled 0..16 → 0..240, and their labels."""
    rows = np.loadtxt(gzip.open(ROOT / "assets" / "digits.csv.gz", "rt"), delimiter=",", dtype=np.int64)
    return (rows[:, :64] * 15).astype(np.uint8).reshape(-1, 8, 8), rows[:, 64].astype(np.uint8)


def idx(magic, dims, data):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data.tobytes()


def rgb32(img):
    """An 8×8 digit as a 3×32×32 image (4× nearest upscaling, a tint per plane)."""
    big = np.kron(img, np.ones((4, 4), dtype=np.uint8))
    return np.stack([big, big // 2, 255 - big]).astype(np.uint8)


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    return d / name


def main():
    images, labels = digits()
    # IDX: 4 images and their labels, as MNIST's files are laid out.
    im = idx(0x803, [4, 8, 8], images[:4])
    lb = idx(0x801, [4], labels[:4])
    write("idx", "digits-images-idx3-ubyte", im)
    write("idx", "digits-labels-idx1-ubyte", lb)
    write("gzip", "digits-images-idx3-ubyte.gz", gzip.compress(im, mtime=0))
    write("gzip", "digits-labels-idx1-ubyte.gz", gzip.compress(lb, mtime=0))

    # CIFAR binary: 2 CIFAR-10 records, 1 CIFAR-100 record (coarse, fine label).
    px = [rgb32(images[i]) for i in range(2)]
    c10 = b"".join(bytes([labels[i]]) + px[i].tobytes() for i in range(2))
    c100 = bytes([labels[2] // 2, labels[2] * 10 + 1]) + rgb32(images[2]).tobytes()
    write("cifar-bin", "data_batch_1.bin", c10)
    write("cifar-bin", "train.bin", c100)

    # CIFAR python version: one image each, as pickle.dump writes the dict.
    data = np.stack([rgb32(images[3]).reshape(-1)])
    p2 = pickle.dumps({"data": data, "labels": [int(labels[3])], "batch_label": "fuzz seed"}, protocol=2)
    p5 = pickle.dumps({b"data": data, b"fine_labels": np.array([int(labels[3])]), b"coarse_labels": [1]},
                      protocol=5)
    write("cifar-pickle", "data_batch_p2", p2)
    write("cifar-pickle", "train_p5", p5)
    for blob in (p2, p5):
        back = pickle.loads(blob)
        assert np.array_equal(back.get("data", back.get(b"data")), data)

    # SVHN: one 32×32×3 image, label 10 for the digit 0, plain and compressed.
    x = np.transpose(rgb32(images[0]), (1, 2, 0))[:, :, :, None].copy()
    y = np.array([[10]], dtype=np.uint8)
    for comp, name in [(False, "test_32x32.mat"), (True, "train_32x32.mat")]:
        buf = io.BytesIO()
        scipy.io.savemat(buf, {"X": x, "y": y}, do_compression=comp)
        p = write("mat5", name, buf.getvalue())
        back = scipy.io.loadmat(p)
        assert np.array_equal(back["X"], x) and np.array_equal(back["y"], y)

    # Tensors from the digits: a 2-filter 3×3 conv, BN buffers, a 0/1 mask.
    conv = torch.from_numpy(images[:2, :3, :3].astype(np.float32) / 240.0).reshape(2, 1, 3, 3)
    sd = {
        "conv1.weight": conv,
        "bn1.weight": torch.ones(2),
        "bn1.bias": torch.zeros(2),
        "bn1.running_mean": conv.mean(dim=(1, 2, 3)),
        "bn1.running_var": conv.var(dim=(1, 2, 3)),
        "bn1.num_batches_tracked": torch.tensor(3, dtype=torch.int64),
        "conv1.weight_mask": (conv > 0.2).to(torch.float32),
        "normalize.mean": torch.tensor([0.3530]),
    }
    p = OUT / "safetensors" / "state-dict.safetensors"
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(p))
    assert torch.equal(load_file(str(p))["conv1.weight"], conv)

    d = OUT / "torch-pickle"
    d.mkdir(parents=True, exist_ok=True)
    torch.save(sd, d / "state-dict.pth")
    torch.save(sd, d / "legacy.pth", _use_new_zipfile_serialization=False)
    # The reference's layout: a dict with the state dict (DataParallel prefixes) and more.
    wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3, "best_acc": 91.5}
    torch.save(wrapped, d / "checkpoint.pth.tar")
    for name in ["state-dict.pth", "legacy.pth", "checkpoint.pth.tar"]:
        back = torch.load(d / name, weights_only=True)
        back = back.get("state_dict", back)
        assert torch.equal(back[[k for k in back if k.endswith("conv1.weight")][0]], conv), name


if __name__ == "__main__":
    main()
