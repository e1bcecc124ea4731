"""`analytic` on a bag-of-words set it was never tuned on (rcv1sub/Yahoo shape), against `finetune`.

Builds, at run time and outside the repository, a TF-IDF bag-of-words dataset from a raw-text set in
$MLCIL_DATA (default se_crypto: 10,432 Stack Exchange questions): scikit-learn's TfidfVectorizer (unigrams,
min_df 2, words or with --ngram-max 2 word pairs too, at most --features columns, sublinear tf), the --labels most frequent tags, rows with at least one
of them. Then each learner runs in a fresh process (the sweep's cell: wall time, peak RSS, last mAP) on a
~5-session protocol, one seed.

    MLCIL_DATA=../shared/data python benchmarks/bow_unseen.py
    MLCIL_DATA=../shared/data python benchmarks/bow_unseen.py --ngram-max 2 --learners analytic,joint,finetune,prototype
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sweep import run_cell


def build(source: str, n_features: int, n_labels: int, out: Path, min_df: int = 2,
          ngram_max: int = 1) -> tuple[int, int, int, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from mlcil.data import load_dataset
    from mlcil.data.npz import write_npz
    from mlcil.data.dataset import Dataset

    raw = load_dataset(source)
    top = np.argsort(-raw.Y.sum(axis=0), kind="stable")[:n_labels]
    keep = raw.Y[:, top].any(axis=1)
    texts = [t for t, k in zip(raw.X, keep) if k]
    X = TfidfVectorizer(min_df=min_df, ngram_range=(1, ngram_max), max_features=n_features, sublinear_tf=True,
                        dtype=np.float32).fit_transform(texts)
    Y = raw.Y[keep][:, top]
    ds = Dataset(sp.csr_matrix(X, dtype=np.float32), Y, [raw.label_names[i] for i in top], name=f"{source}-bow")
    write_npz(ds, out)
    return ds.n, ds.d, ds.L, float(Y.sum(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="se_crypto")
    parser.add_argument("--features", type=int, default=30000)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--min-df", type=int, default=2, help="a term must occur in this many texts")
    parser.add_argument("--ngram-max", type=int, default=1, help="1 = words; 2 = words and word pairs")
    parser.add_argument("--learners", default="analytic,finetune,prototype")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.source}-bow.npz"
        n, d, L, card = build(args.source, args.features, args.labels, path, args.min_df, args.ngram_max)
        protocol = f"B0-C{math.ceil(L / 5)}"
        print(f"{args.source}-bow: n = {n}, d = {d} (sparse TF-IDF), L = {L}, cardinality {card:.2f}, {protocol}\n")
        print("| learner | last mAP | avg mAP | wall s | peak RSS GB |")
        print("|---|---|---|---|---|")
        for learner in args.learners.split(","):
            c = run_cell(str(path), protocol, learner, "", args.timeout)
            if "error" in c:
                print(f"| `{learner}` | fails: {c['error']} | | {c['wall_s']:.0f} | |", flush=True)
            else:
                print(f"| `{learner}` | {100 * c['last_mAP']:.1f} | {100 * c['avg_mAP']:.1f} | {c['wall_s']:.0f} | "
                      f"{c['peak_rss_bytes'] / 1e9:.2f} |", flush=True)


if __name__ == "__main__":
    main()
