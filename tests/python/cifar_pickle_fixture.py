"""Writes small CIFAR python-version files for tests/data_formats_more.rs.

    cifar_pickle_fixture.py good DIR KIND STYLE N SEED [BINDIR]
        KIND 10 or 100; STYLE one of
          py2      the opcode stream Python 2's cPickle (protocol 2) wrote for the published
                   files, written by hand: SHORT_BINSTRING keys, the array data as a BINSTRING
          py3      Python 3 pickle.dump(protocol=2): str keys, data via _codecs.encode
          py3p5    protocol 5, bytes keys, labels as an int64 NumPy array
          list     protocol 4, data as a list of bytes rows
          py3p0    Python 3 pickle.dump(protocol=0): text opcodes, data via _codecs.encode
        N images per file. Also writes DIR/expect/<file>.pixels and .labels (raw bytes), and with
        BINDIR the binary version of the same images.
    cifar_pickle_fixture.py bad DIR
        Writes one malformed CIFAR-10 batch per bad case into DIR.

Every file written is read back with Python's own pickle.load(encoding='bytes') and checked
against the arrays it was made from, and disassembled with pickletools, before the script exits.
"""

import io
import pickle
import pickletools
import struct
import sys
from pathlib import Path

import numpy as np

FILES = {10: ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"],
         100: ["train", "test"]}
BIN = {10: "{}.bin", 100: "{}.bin"}


class Py2Writer:
    """Emits protocol-2 opcodes the way Python 2's cPickle does for a CIFAR dict."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def put(self):
        self.memo += 1
        if self.memo < 256:
            self.out += b"q" + bytes([self.memo])
        else:
            self.out += b"r" + struct.pack("<I", self.memo)

    def global_(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        self.put()

    def str_(self, s):
        # A Python 2 str: SHORT_BINSTRING below 256 bytes, else BINSTRING.
        if len(s) < 256:
            self.out += b"U" + bytes([len(s)]) + s
        else:
            self.out += b"T" + struct.pack("<I", len(s)) + s
        self.put()

    def int_(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        else:
            self.out += b"J" + struct.pack("<i", v)

    def list_(self, items, item):
        self.out += b"]"
        self.put()
        # cPickle batches APPENDS by 1000 and uses APPEND for a batch of one.
        for i in range(0, len(items), 1000):
            batch = items[i:i + 1000]
            if len(batch) == 1:
                item(batch[0])
                self.out += b"a"
            else:
                self.out += b"("
                for x in batch:
                    item(x)
                self.out += b"e"

    def ndarray(self, a):
        assert a.dtype == np.uint8 and a.flags.c_contiguous
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.int_(0)
        self.out += b"\x85"
        self.put()
        self.str_(b"b")
        self.out += b"\x87"
        self.put()
        self.out += b"R"
        self.put()
        self.out += b"("
        self.int_(1)
        for d in a.shape:
            self.int_(d)
        self.out += b"\x86"
        self.put()
        self.global_("numpy", "dtype")
        self.str_(b"u1")
        self.int_(0)
        self.int_(1)
        self.out += b"\x87"
        self.put()
        self.out += b"R"
        self.put()
        self.out += b"("
        self.int_(3)
        self.str_(b"|")
        self.out += b"NNN" + b"J" + struct.pack("<i", -1) + b"J" + struct.pack("<i", -1)
        self.int_(0)
        self.out += b"t"
        self.put()
        self.out += b"b"
        self.out += b"\x89"  # is_fortran = False
        self.str_(a.tobytes())
        self.out += b"t"
        self.put()
        self.out += b"b"

    def dict_(self, items):
        self.out += b"}"
        self.put()
        self.out += b"("
        for k, v in items:
            self.str_(k.encode())
            if isinstance(v, np.ndarray):
                self.ndarray(v)
            elif isinstance(v, bytes):
                self.str_(v)
            elif isinstance(v, list) and v and isinstance(v[0], bytes):
                self.list_(v, self.str_)
            else:
                self.list_([int(x) for x in v], self.int_)
        self.out += b"u"

    def finish(self):
        return bytes(self.out + b".")


def make(kind, n, seed, name):
    rng = np.random.RandomState(seed)
    # Position-dependent pixels: a transposed or plane-swapped reader cannot match.
    idx = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072)
    data = ((idx * 7 + rng.randint(0, 256, size=(n, 3072))) % 256).astype(np.uint8)
    fine = rng.randint(0, kind, size=n)
    entries = [("batch_label", f"{name} of test".encode())]
    if kind == 10:
        entries += [("labels", [int(x) for x in fine]), ("data", data)]
    else:
        coarse = fine // 5
        entries += [("fine_labels", [int(x) for x in fine]),
                    ("coarse_labels", [int(x) for x in coarse]), ("data", data)]
    entries.append(("filenames", [f"img_{seed}_{i}.png".encode() for i in range(n)]))
    return data, fine, entries


def check(path, data, labels_key, labels):
    raw = path.read_bytes()
    pickletools.dis(raw, out=io.StringIO())
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    key = lambda k: k.encode() if isinstance(next(iter(d)), bytes) else k
    got = d[key("data")]
    got = np.array([list(r) for r in got], dtype=np.uint8) if isinstance(got, list) else got
    assert got.dtype == np.uint8 and np.array_equal(got, data), path
    assert [int(x) for x in d[key(labels_key)]] == [int(x) for x in labels], path


def write_good(out, kind, style, n, seed, bindir):
    out.mkdir(parents=True, exist_ok=True)
    (out / "expect").mkdir(exist_ok=True)
    labels_key = "labels" if kind == 10 else "fine_labels"
    for i, name in enumerate(FILES[kind]):
        data, fine, entries = make(kind, n, seed * 100 + i, name)
        path = out / name
        if style == "py2":
            w = Py2Writer()
            w.dict_(entries)
            path.write_bytes(w.finish())
        elif style == "py3":
            with open(path, "wb") as f:
                pickle.dump({k: v for k, v in entries}, f, protocol=2)
        elif style == "py3p5":
            d = {k.encode(): v for k, v in entries}
            d[labels_key.encode()] = np.array(fine, dtype=np.int64)
            with open(path, "wb") as f:
                pickle.dump(d, f, protocol=5)
        elif style == "py3p0":
            with open(path, "wb") as f:
                pickle.dump({k: v for k, v in entries}, f, protocol=0)
        elif style == "list":
            d = {k: v for k, v in entries}
            d["data"] = [row.tobytes() for row in data]
            with open(path, "wb") as f:
                pickle.dump(d, f, protocol=4)
        else:
            raise SystemExit(f"unknown style {style}")
        check(path, data, labels_key, fine)
        (out / "expect" / f"{name}.pixels").write_bytes(data.tobytes())
        (out / "expect" / f"{name}.labels").write_bytes(fine.astype(np.uint8).tobytes())
        if bindir is not None:
            bindir.mkdir(parents=True, exist_ok=True)
            rec = bytearray()
            for r in range(n):
                if kind == 100:
                    rec.append(int(fine[r]) // 5)
                rec.append(int(fine[r]))
                rec += data[r].tobytes()
            (bindir / BIN[kind].format(name)).write_bytes(bytes(rec))


def write_bad(out):
    out.mkdir(parents=True, exist_ok=True)
    n = 4
    good = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072).astype(np.uint8)
    labels = [0, 1, 2, 3]

    def dump(name, d, protocol=2):
        with open(out / name, "wb") as f:
            pickle.dump(d, f, protocol=protocol)

    dump("bad_label", {"data": good, "labels": [0, 1, 10, 3]})
    dump("negative_label", {"data": good, "labels": [0, -1, 2, 3]})
    dump("bad_shape", {"data": good.reshape(n * 3072)[: n * 3071].reshape(n, 3071), "labels": labels})
    dump("fortran", {"data": np.asfortranarray(good), "labels": labels})
    dump("fortran_p5", {"data": np.asfortranarray(good), "labels": labels}, protocol=5)
    dump("int16", {"data": good.astype(np.int16), "labels": labels})
    dump("count_mismatch", {"data": good, "labels": [0, 1, 2]})
    dump("no_labels", {"data": good, "fine_labels": labels})
    dump("list_root", [good, labels])
    dump("string_labels", {"data": good, "labels": ["cat"] * n})
    dump("short_row", {"data": [r.tobytes() for r in good[:, :3000]], "labels": labels})
    dump("empty", {"data": np.zeros((0, 3072), dtype=np.uint8), "labels": []})


def main():
    if sys.argv[1] == "good":
        _, _, out, kind, style, n, seed, *rest = sys.argv
        write_good(Path(out), int(kind), style, int(n), int(seed), Path(rest[0]) if rest else None)
    elif sys.argv[1] == "bad":
        write_bad(Path(sys.argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
