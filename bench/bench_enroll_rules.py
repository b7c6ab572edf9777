"""Benchmark: which decision rules could bring remember-this-place and --enrolled-only to their targets.

    OMP_NUM_THREADS=1 python bench/bench_enroll_rules.py --work /tmp/bench_enroll --json bench/results/bench_enroll_rules.json

The same honest setting as bench/bench_enroll.py (3 folds grouped by recording, one encoder per fold trained
on the fold's training recordings only, its base index of those recordings; ``--work`` is shared with it,
so the fold models are reused). Every figure is on the fold's test recordings, which neither the encoder nor
the index ever heard. Constants are chosen by nested selection: for each fold, the value that does best on
the two other folds is scored on this one (no fold's test audio chooses its own setting).

* remember (default mode; issue 10's targets: accuracy >= 0.95, captured <= 0.02): each test recording's
  first E s (5/10/20) enrolled under its class; the rest classified. Rules: the daemon's vote over k
  segments (``window`` mode, k = 1/3/5, runtime.decision.vote with its distance tie-break), and a bias
  toward enrolled items (an enrolled item's squared distance multiplied by b < 1 before the nearest item is
  taken). ``accuracy``: share of later segments whose decision is the right class; ``captured``: share of
  segments whose decision is wrong and went to a label an enrolled item of *another* recording voted for
  in that segment (k = 1: the segment's nearest item is such an item). b is chosen by nested selection:
  the most accurate b whose captured share is <= 0.02 on the other folds.
* enrolled-only (targets keep >= 0.90, unknown >= 0.90), 20 s enrolled: each test recording is a place;
  ``keep``: its later segments given its own place; ``unknown``: its later segments called unknown when it
  is not enrolled and the other test recordings are. Rules: the ratio test of runtime.search (nearest place
  at most c x the nearest base item, squared distances) voted over k segments (window mode, as the daemon),
  and the same log-ratio averaged over the last k segments before the test (``smoothed``: a rule the daemon
  does not have; measured to see whether it would be worth one). c by nested selection maximising
  min(keep, unknown). ``auroc``: how well the per-segment log ratio separates own-place segments (nearest
  place right) from segments of places not enrolled; ``nearest_place_right``: share of segments whose
  nearest place is their own (the most any threshold can keep per segment).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_enroll as be  # noqa: E402  (the fold models and recording features)

from edge_asc.runtime.decision import vote  # noqa: E402

BIASES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7)
KS = (1, 3, 5)
RATIOS = tuple(float(x) for x in np.round(np.exp(np.linspace(np.log(0.5), np.log(2.0), 25)), 3))
EO_KS = (1, 3, 5, 10)
CAPTURE_TARGET = 0.02


def sqd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :], 0)


def spans(starts: np.ndarray, n: int):
    return zip(starts, list(starts[1:]) + [n])


def window_votes(lab: np.ndarray, dist: np.ndarray, starts: np.ndarray, k: int, n_labels: int) -> np.ndarray:
    """Each segment's decision: the runtime's vote over its k-segment window (window mode, windows restart at
    each recording; a last, shorter window is voted over what it has)."""
    out = lab.copy()
    if k == 1:
        return out
    for a, b in spans(starts, len(lab)):
        for i in range(a, b, k):
            j = min(i + k, b)
            out[i:j] = vote(lab[i:j], dist[i:j], n_labels)[0]
    return out


def causal_mean(x: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """Mean of the last k rows (fewer at a recording's start), within each recording."""
    out = np.empty_like(x)
    for a, b in spans(starts, len(x)):
        cs = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), x[a:b]]), 0)
        i = np.arange(b - a)
        lo = np.maximum(i - k + 1, 0)
        out[a:b] = (cs[i + 1] - cs[lo]) / (i + 1 - lo)[:, None]
    return out


def fold_distances(fd: be.FoldData, seg_s: float, enrol_s: float) -> dict:
    """Per scored test recording's later segments: the nearest base item per class and the nearest item of
    each enrolled place (each test recording's first enrol_s)."""
    n_enr = int(round(enrol_s / seg_s))
    places = [r for r in fd.test if len(fd.rec_emb[r][1]) * seg_s >= enrol_s + be.MIN_REST_S]
    rests = [fd.rec_emb[r][1][n_enr:] for r in places]
    rest = np.concatenate(rests)
    db = sqd(rest, fd.base_vecs)
    base_c = np.full((len(rest), len(fd.labels)), np.inf)
    for c in range(len(fd.labels)):
        if (fd.base_labels == c).any():
            base_c[:, c] = db[:, fd.base_labels == c].min(1)
    return {
        "base_c": base_c, "place": np.stack([sqd(rest, fd.rec_emb[r][1][:n_enr]).min(1) for r in places], 1),
        "pcls": np.array([fd.labels.index(fd.rec_emb[r][0]) for r in places]),
        "own": np.repeat(np.arange(len(places)), [len(x) for x in rests]), "starts": np.cumsum([0] + [len(x) for x in rests[:-1]]),
    }


def remember_fold(d: dict, bias: float, k: int) -> tuple[float, float]:
    """(accuracy, captured) of one fold for one bias and k."""
    n, C = d["base_c"].shape
    s = np.concatenate([d["base_c"], bias * d["place"]], 1)
    w = s.argmin(1)
    cls = np.concatenate([np.arange(C), d["pcls"]])[w]
    true = d["pcls"][d["own"]]
    dec = window_votes(cls, s[np.arange(n), w], d["starts"], k, C)
    foreign = (w >= C) & (w - C != d["own"]) & (cls != true)  # the segment's vote came from another recording's enrolment
    captured = np.zeros(n, bool)
    for a, b in spans(d["starts"], n):
        for i in range(a, b, k):
            j = min(i + k, b)
            captured[i:j] = (dec[i] != true[i]) and bool((foreign[i:j] & (cls[i:j] == dec[i])).any())
    return float((dec == true).mean()), float(captured.mean())


def remember(dists: list[dict]) -> dict:
    out = {}
    for k in KS:
        per = np.array([[remember_fold(d, b, k) for b in BIASES] for d in dists])  # fold x bias x (acc, cap)
        nested = []
        for f in range(len(dists)):
            other = per[[i for i in range(len(dists)) if i != f]].mean(0)
            ok = [j for j in range(len(BIASES)) if other[j, 1] <= CAPTURE_TARGET] or [0]
            j = max(ok, key=lambda j: other[j, 0])
            nested.append({"fold": f, "bias": BIASES[j], "accuracy": per[f, j, 0], "captured": per[f, j, 1]})
        out[f"k{k}"] = {"by_bias": {str(b): {"accuracy": per[:, j, 0].mean(), "captured": per[:, j, 1].mean()} for j, b in enumerate(BIASES)},
                        "nested": nested, "nested_mean": {m: float(np.mean([x[m] for x in nested])) for m in ("accuracy", "captured")}}
    return out


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    r = np.concatenate([pos, neg]).argsort().argsort() + 1
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def enrolled_only_fold(d: dict, k: int, smoothed: bool) -> np.ndarray:
    """(len(RATIOS), 2) keep and unknown shares of one fold for every c."""
    n, P = d["place"].shape
    own = d["own"]
    lr = np.log(d["place"] + 1e-12) - np.log(d["base_c"].min(1) + 1e-12)[:, None]  # per place log ratio
    out = np.zeros((len(RATIOS), 2))
    for col, excluded in ((0, False), (1, True)):
        x = lr.copy()
        if excluded:
            x[np.arange(n), own] = 1e3  # the segment's own place is not enrolled
        if smoothed:
            x = causal_mean(x, d["starts"], k)
        w = x.argmin(1)
        s = x[np.arange(n), w]
        for j, c in enumerate(RATIOS):
            lab = np.where(s <= np.log(c), w, P)
            if not smoothed:
                lab = window_votes(lab, s, d["starts"], k, P + 1)
            out[j, col] = (lab == own).mean() if col == 0 else (lab == P).mean()
    return out


def enrolled_only(dists: list[dict]) -> dict:
    out = {}
    for smoothed in (False, True):
        for k in EO_KS:
            if smoothed and k == 1:
                continue
            per = np.array([enrolled_only_fold(d, k, smoothed) for d in dists])  # fold x c x (keep, unknown)
            score = per.min(2)
            nested = []
            for f in range(len(dists)):
                j = int(score[[i for i in range(len(dists)) if i != f]].mean(0).argmax())
                nested.append({"fold": f, "c": RATIOS[j], "keep": per[f, j, 0], "unknown": per[f, j, 1]})
            j1 = RATIOS.index(min(RATIOS, key=lambda c: abs(c - 1.0)))
            out[f"{'smoothed' if smoothed else 'vote'}_k{k}"] = {
                "nested": nested, "nested_mean": {m: float(np.mean([x[m] for x in nested])) for m in ("keep", "unknown")},
                "c1": {"keep": float(per[:, j1, 0].mean()), "unknown": float(per[:, j1, 1].mean())}}
    aucs, top1 = [], []
    for d in dists:
        n = len(d["own"])
        lr = np.log(d["place"] + 1e-12) - np.log(d["base_c"].min(1) + 1e-12)[:, None]
        w = lr.argmin(1)
        ex = lr.copy()
        ex[np.arange(n), d["own"]] = np.inf
        aucs.append(auroc(-lr[np.arange(n), w][w == d["own"]], -ex.min(1)))
        top1.append(float((w == d["own"]).mean()))
    out["auroc_per_segment"] = float(np.mean(aucs))
    out["nearest_place_right"] = float(np.mean(top1))  # the most any rule can keep per segment
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    be.add_fold_arguments(p)
    args = p.parse_args(argv)
    fc, data = be.folds_from_arguments(args)
    res = {"remember": {}, "enrolled_only": {}}
    for e in be.ENROL_SECONDS:
        res["remember"][f"{e:g}s"] = remember([fold_distances(fd, fc.segment_seconds, e) for fd in data])
    res["enrolled_only"] = enrolled_only([fold_distances(fd, fc.segment_seconds, 20.0) for fd in data])
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=float) + "\n")
    return 0


def report(res: dict) -> None:
    print("remember this place: accuracy / captured of decisions (window vote over k); bias b on enrolled distances")
    for e, by_k in res["remember"].items():
        for k, r in by_k.items():
            row = "  ".join(f"b{b}: {x['accuracy']:.3f}/{x['captured']:.4f}" for b, x in r["by_bias"].items())
            m = r["nested_mean"]
            print(f"  {e:>4} {k:<3} {row}  | nested {m['accuracy']:.3f}/{m['captured']:.4f} b={[x['bias'] for x in r['nested']]}")
    eo = res["enrolled_only"]
    print(f"enrolled-only, 20 s enrolled: keep / unknown (per-segment AUROC of the log ratio {eo['auroc_per_segment']:.3f}; "
          f"nearest place right on {eo['nearest_place_right']:.3f} of segments)")
    for name, r in eo.items():
        if not isinstance(r, dict):
            continue
        m, c1 = r["nested_mean"], r["c1"]
        print(f"  {name:<12} c=1: {c1['keep']:.3f} / {c1['unknown']:.3f}   nested {m['keep']:.3f} / {m['unknown']:.3f} c={[x['c'] for x in r['nested']]}")


if __name__ == "__main__":
    sys.exit(main())
