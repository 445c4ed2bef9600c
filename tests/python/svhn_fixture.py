"""Writes small SVHN cropped-digits MAT-files for tests/data_formats_more.rs.

    svhn_fixture.py good DIR N SEED COMPRESS YTYPE
        scipy.io.savemat train_32x32.mat, test_32x32.mat and extra_32x32.mat with N images each
        (COMPRESS 0/1; YTYPE uint8 or double), plus DIR/expect/<file>.pixels (N×3×32×32, the
        transpose torchvision's SVHN applies) and .labels (label 10 written as 0).
    svhn_fixture.py bad DIR
        One malformed file per bad case.
    svhn_fixture.py bigendian DIR
        train/test files written big-endian by hand (SciPy writes native order only).

Every good file is read back with scipy.io.loadmat and checked before the script exits.
"""

import struct
import sys
from pathlib import Path

import numpy as np
import scipy.io

NAMES = ["train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"]


def make(n, seed):
    rng = np.random.RandomState(seed)
    r, c, ch, i = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), np.arange(n), indexing="ij")
    # Position-dependent values: a reader that swaps rows and columns, or planes, cannot match.
    x = ((r * 7 + c * 13 + ch * 101 + i * 29 + rng.randint(0, 3, size=r.shape)) % 256).astype(np.uint8)
    y = rng.randint(1, 11, size=(n, 1))
    y[0, 0] = 10  # always one digit 0
    return x, y


def expect(out, name, x, y):
    (out / "expect").mkdir(exist_ok=True)
    (out / "expect" / f"{name}.pixels").write_bytes(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))).tobytes())
    (out / "expect" / f"{name}.labels").write_bytes((y[:, 0] % 10).astype(np.uint8).tobytes())


def write_good(out, n, seed, compress, ytype):
    out.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(NAMES):
        x, y = make(n, seed * 10 + k)
        path = out / name
        scipy.io.savemat(path, {"X": x, "y": y.astype(ytype)}, do_compression=compress)
        back = scipy.io.loadmat(path)
        assert back["X"].dtype == np.uint8 and np.array_equal(back["X"], x), path
        assert back["y"].dtype == np.dtype(ytype) and np.array_equal(back["y"], y), path
        expect(out, name, x, y)


def write_bad(out):
    out.mkdir(parents=True, exist_ok=True)
    x, y = make(3, 1)

    def save(name, d, compress=True):
        scipy.io.savemat(out / name, d, do_compression=compress)

    save("missing_X.mat", {"y": y})
    save("missing_y.mat", {"X": x, "labels": y})
    save("gray.mat", {"X": x[:, :, :1, :], "y": y})
    save("small.mat", {"X": x[:28, :28], "y": y})
    save("two_dims.mat", {"X": x.reshape(32 * 32 * 3, 3), "y": y})
    y0 = y.copy()
    y0[1, 0] = 0
    save("label0.mat", {"X": x, "y": y0})
    y11 = y.copy()
    y11[2, 0] = 11
    save("label11.mat", {"X": x, "y": y11.astype(np.float64)}, compress=False)
    save("label_fraction.mat", {"X": x, "y": y.astype(np.float64) + np.array([[0], [0.5], [0]])})
    save("count.mat", {"X": x, "y": y[:2]})
    save("x_double.mat", {"X": x.astype(np.float64), "y": y})
    save("y_text.mat", {"X": x, "y": "abc"})
    save("y_complex.mat", {"X": x, "y": y + 1j})
    # v7.3: what MATLAB writes with -v7.3: a 512-byte MAT header, then an HDF5 file.
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0200) + b"IM"
    (out / "v73.mat").write_bytes(header.ljust(512, b"\0") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    (out / "not_mat.mat").write_bytes(b"\x00\x01" * 300)


def be_element(t, data):
    """A big-endian data element, padded to 8 bytes (small format for at most 4 bytes)."""
    if len(data) <= 4:
        return struct.pack(">HH", len(data), t) + data.ljust(4, b"\0")
    return struct.pack(">II", t, len(data)) + data + b"\0" * (-len(data) % 8)


def be_matrix(name, cls, dims, t, data):
    body = be_element(6, struct.pack(">II", cls, 0))  # array flags: class, no flags
    body += be_element(5, b"".join(struct.pack(">i", d) for d in dims))
    body += be_element(1, name.encode())
    body += be_element(t, data)
    return struct.pack(">II", 14, len(body)) + body


def write_bigendian(out):
    out.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(NAMES[:2]):
        x, y = make(4, 50 + k)
        # Column-major bytes of X; y as big-endian doubles.
        xb = x.tobytes(order="F")
        yb = y.astype(">f8").tobytes(order="F")
        header = b"MATLAB 5.0 MAT-file, written big-endian by hand".ljust(116, b" ") + b"\0" * 8
        header += struct.pack(">H", 0x0100) + b"MI"
        body = be_matrix("X", 9, list(x.shape), 2, xb) + be_matrix("y", 6, list(y.shape), 9, yb)
        path = out / name
        path.write_bytes(header + body)
        back = scipy.io.loadmat(path)
        assert np.array_equal(back["X"], x) and np.array_equal(back["y"], y), path
        expect(out, name, x, y)


def main():
    if sys.argv[1] == "good":
        _, _, out, n, seed, compress, ytype = sys.argv
        write_good(Path(out), int(n), int(seed), compress == "1", ytype)
    elif sys.argv[1] == "bad":
        write_bad(Path(sys.argv[2]))
    elif sys.argv[1] == "bigendian":
        write_bigendian(Path(sys.argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
