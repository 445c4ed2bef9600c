"""Times scikit-learn's SVC(C=3, gamma='auto') fit+predict on data written by gunlearn's bench_mia.

Usage: mia_sklearn.py DIR NAME N D M
Reads DIR/NAME_x.f32 (N×D), DIR/NAME_y.u8 (N), DIR/NAME_t.f32 (M×D); writes DIR/NAME_sk_pred.u8
and prints one JSON line {"fit_s": .., "predict_s": ..}.
"""
import json
import os
import sys
import time

import numpy as np
from sklearn.svm import SVC


def main():
    out_dir, name, n, d, m = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    x = np.fromfile(os.path.join(out_dir, f"{name}_x.f32"), dtype="<f4").reshape(n, d)
    y = np.fromfile(os.path.join(out_dir, f"{name}_y.u8"), dtype=np.uint8)
    t = np.fromfile(os.path.join(out_dir, f"{name}_t.f32"), dtype="<f4").reshape(m, d)
    # Same float64 values as gunlearn sees after widening its f32 features.
    x, t = x.astype(np.float64), t.astype(np.float64)
    t0 = time.perf_counter()
    clf = SVC(C=3, gamma="auto").fit(x, y)
    t1 = time.perf_counter()
    pred = clf.predict(t)
    t2 = time.perf_counter()
    pred.astype(np.uint8).tofile(os.path.join(out_dir, f"{name}_sk_pred.u8"))
    print(json.dumps({"fit_s": t1 - t0, "predict_s": t2 - t1}))


if __name__ == "__main__":
    main()
