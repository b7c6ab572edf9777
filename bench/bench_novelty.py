"""Benchmark: is the distance to the nearest training item a usable "unknown" signal in the default mode?

    OMP_NUM_THREADS=1 python bench/bench_novelty.py --work /tmp/bench_enroll --json bench/results/bench_novelty.json

bench/bench_enroll.py's fold models (3 folds grouped by recording, one encoder per fold trained on the
fold's training recordings only, its index of them; ``--work`` shared with it). Per fold,
edge_asc.evaluation.novelty.leave_one_class_out on the fold's test recordings: each class in turn is
removed from the index; its test segments are the novel audio, the other classes' test segments (unheard
recordings of known classes) the known audio. Optimistic: the encoder heard other recordings of the
held-out class. The default mode ships without a distance threshold unless the AUROC reaches
novelty.USEFUL_AUROC.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_enroll as be  # noqa: E402

from edge_asc.evaluation.novelty import USEFUL_AUROC, leave_one_class_out  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    be.add_fold_arguments(p)
    args = p.parse_args(argv)
    res = {"folds": []}
    for f, fd in enumerate(be.folds_from_arguments(args)[1]):
        emb = np.concatenate([fd.rec_emb[r][1] for r in fd.test])
        lab = np.concatenate([np.full(len(fd.rec_emb[r][1]), fd.labels.index(fd.rec_emb[r][0])) for r in fd.test])
        r = leave_one_class_out(fd.base_vecs, fd.base_labels, emb, lab)
        res["folds"].append({"fold": f, "auroc": r.auroc, "per_class": {fd.labels[c]: a for c, a in r.per_class.items()}})
        print(f"fold {f}: AUROC {r.auroc:.3f}  " + " ".join(f"{fd.labels[c]} {a:.2f}" for c, a in r.per_class.items()))
    res["auroc"] = float(np.mean([x["auroc"] for x in res["folds"]]))
    res["useful_auroc"] = USEFUL_AUROC
    print(f"mean AUROC {res['auroc']:.3f} (a default-mode threshold ships only at >= {USEFUL_AUROC}): "
          f"{'useful' if res['auroc'] >= USEFUL_AUROC else 'not useful: shipped off'}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
