"""How often each seed-aware interval covers the true run-level difference, by number of seeds (simulated).

    python bench/seed_coverage.py                       # writes bench/results/seed_coverage.json
    python bench/seed_coverage.py --sims 100 --out -    # a quick look, printed

A simulated two-arm collapse comparison shaped like `smol`'s: 157 test probes shared by every seed, each with its
own chance of being answered right (uniform on [0.2, 0.8]) under the control; under the strategy that chance moves
by delta + u_s, where u_s ~ N(0, tau) is the seed's own share of the effect (its pool, its training order). The
target is delta, the difference averaged over seeds and probes. Each arm's answers are drawn independently
given those chances. Per number of seeds, the share of simulations whose 95% interval holds delta, and the mean
width, for: the t-interval over seed-level differences and the cluster bootstrap over seeds then probes
(rag_bench.eval.seed_intervals), and the earlier two-level bootstrap with one probe draw shared by the seeds
(rag_bench.eval.bootstrap.difference). It says how the methods behave on data of this shape, not what a real
run's seed spread is: tau is set from the two `smol` seeds (grounded falls of -0.10 and -0.02), a guess.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_bench.eval.bootstrap import difference
from rag_bench.eval.seed_intervals import cluster_bootstrap, seed_t_interval


def simulate(n_seeds: int, *, sims: int, probes: int, delta: float, tau: float, replicates: int,
             seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    hits = {"seed_t": [], "cluster_bootstrap": [], "shared_probe_bootstrap": []}
    widths = {k: [] for k in hits}
    for sim in range(sims):
        chance = rng.uniform(0.2, 0.8, size=probes)
        shift = delta + rng.normal(0.0, tau, size=(n_seeds, 1))
        a = (rng.random((n_seeds, probes)) < chance).astype(float)
        b = (rng.random((n_seeds, probes)) < np.clip(chance + shift, 0, 1)).astype(float)
        d = b - a
        intervals = {"seed_t": seed_t_interval(d.mean(axis=1)),
                     "cluster_bootstrap": cluster_bootstrap(d, replicates=replicates, seed=sim),
                     "shared_probe_bootstrap": difference(
                         [dict(enumerate(row)) for row in a], [dict(enumerate(row)) for row in b],
                         replicates=replicates, seed=sim)}
        for name, result in intervals.items():
            hits[name].append(result.low <= delta <= result.high)
            widths[name].append(result.high - result.low)
    return {name: {"coverage": round(float(np.mean(hits[name])), 3), "mean_width": round(float(np.mean(widths[name])),
                                                                                         4)} for name in hits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=400, help="simulated runs per number of seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 8])
    parser.add_argument("--probes", type=int, default=157, help="test probes per seed (smol's)")
    parser.add_argument("--delta", type=float, default=-0.06, help="true run-level difference")
    parser.add_argument("--tau", type=float, default=0.04, help="SD of a seed's own share of the difference")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates per interval")
    parser.add_argument("--out", default="bench/results/seed_coverage.json", help="JSON file, or - to print")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = {str(n): simulate(n, sims=args.sims, probes=args.probes, delta=args.delta, tau=args.tau,
                             replicates=args.replicates, seed=n) for n in args.seeds}
    result = {"command": "python bench/seed_coverage.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "settings": {k: v for k, v in vars(args).items() if k != "out"}, "level": 0.95,
              "by_seeds": rows, "seconds": round(time.perf_counter() - started, 1), "machine": platform.processor()
              or platform.machine(), "monte_carlo_se_at_95": round(float(np.sqrt(0.95 * 0.05 / args.sims)), 4)}
    text = json.dumps(result, indent=2) + "\n"
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
