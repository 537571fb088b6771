"""The Gaussian anchor run through the harness: ``build_pool`` and the generation loop, a Gaussian fit as the model.

    from rag_bench.theory.harness import gaussian_through_harness
    series = gaussian_through_harness("replace", samples=50, generations=10, chains=300)
    series["simulated"]["var"], series["closed_form"]["var"]     # agree within a few SE under replace

Each chain is the collapse loop of ``rag_bench.collapse.steps`` in miniature: generation 0 "trains" (fits mean
and variance) on M human samples; generation k's pool comes from ``rag_bench.collapse.strategies.build_pool`` with the
texts every earlier generation "wrote" (M samples drawn from its fit, one unit of one token each), and it fits
that pool. Under ``replace`` this is exactly the recursion of ``theory.recursions`` (Shumailov et al. Thm 3.1), so
the closed forms there check that the harness's pools and generation numbering are the ones the theory means.
Under ``accumulate`` the pool is the union of the human samples and all generations' samples (Gerstgrasser et
al.); its mean shift stays below the bound (pi^2/6) sigma0^2 / M of their accumulate result, checked as a bound.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rag_bench.collapse.strategies import Strategy, build_pool
from rag_bench.theory.recursions import GAUSSIAN_QUANTITIES, Estimator, gaussian_closed_form


def _units(values: np.ndarray, generation: int | None) -> list[dict[str, Any]]:
    if generation is None:
        return [{"id": f"human/{i}", "contents": repr(float(v)), "metadata": {"source": "human", "tokens": 1}}
                for i, v in enumerate(values)]
    return [{"id": f"gen{generation}/plain/{i}/0", "contents": repr(float(v)),
             "metadata": {"source": "synthetic", "generation": generation, "tokens": 1}} for i, v in enumerate(values)]


def _fit(pool: list[dict[str, Any]], ddof: int) -> tuple[float, float]:
    values = np.array([float(u["contents"]) for u in pool])
    return float(values.mean()), float(values.var(ddof=ddof))


def gaussian_chain(strategy: str, *, samples: int, generations: int, rng: np.random.Generator,
                   estimator: Estimator = "unbiased", mu0: float = 0.0,
                   sigma0: float = 1.0) -> list[tuple[float, float]]:
    """(mean, variance) of the fit of generations 0..generations-1 of one chain, through ``build_pool``."""
    parsed, ddof = Strategy.parse(strategy), 1 if estimator == "unbiased" else 0
    human = _units(mu0 + sigma0 * rng.standard_normal(samples), None)
    mu, var = _fit(human, ddof)  # generation 0 trains on the human data
    fits, written = [(mu, var)], []
    for k in range(1, generations):
        written.append(_units(mu + math.sqrt(var) * rng.standard_normal(samples), k - 1))  # generation k-1 writes
        pool, _ = build_pool(parsed, generation=k, human=human, synthetic=written, budget=samples,
                             seed=int(rng.integers(2**31)))
        mu, var = _fit(pool, ddof)
        fits.append((mu, var))
    return fits


def gaussian_through_harness(strategy: str = "replace", *, samples: int = 50, generations: int = 10,
                             chains: int = 300, seed: int = 0, estimator: Estimator = "unbiased", mu0: float = 0.0,
                             sigma0: float = 1.0) -> dict[str, Any]:
    """Per generation: the chain mean and SE of each GAUSSIAN_QUANTITIES, and the closed form (``replace``) or the
    accumulate bound on the mean shift."""
    rng = np.random.default_rng(seed)
    fits = np.array([gaussian_chain(strategy, samples=samples, generations=generations, rng=rng,
                                    estimator=estimator, mu0=mu0, sigma0=sigma0) for _ in range(chains)])
    mu, var = fits[..., 0].T, fits[..., 1].T  # (generations, chains)
    sd = np.sqrt(var)
    values = {"var": var, "sd": sd, "log_var": np.log(var), "mean_shift_sq": (mu - mu0) ** 2,
              "w2_sq": (mu - mu0) ** 2 + (sd - sigma0) ** 2}
    out: dict[str, Any] = {
        "strategy": strategy, "estimator": estimator, "samples": samples, "chains": chains,
        "generation": list(range(generations)),
        "simulated": {q: values[q].mean(axis=1).tolist() for q in GAUSSIAN_QUANTITIES},
        "se": {q: (values[q].std(axis=1, ddof=1) / math.sqrt(chains)).tolist() for q in GAUSSIAN_QUANTITIES}}
    if strategy == "replace":
        exact = gaussian_closed_form(samples, generations, estimator=estimator, mu0=mu0, sigma0=sigma0)
        out["closed_form"] = {q: exact[f"mean_{q}"].tolist() for q in GAUSSIAN_QUANTITIES}
    out["mean_shift_bound"] = math.pi**2 / 6 * sigma0**2 / samples
    return out


def harness_zscores(series: dict[str, Any]) -> list[float]:
    """|simulated - closed form| / SE of every quantity and generation (replace), for the report's check."""
    if "closed_form" not in series:
        return []
    return [abs(s - c) / e for q in GAUSSIAN_QUANTITIES
            for s, c, e in zip(series["simulated"][q], series["closed_form"][q], series["se"][q], strict=True) if e > 0]


def harness_report(config: Any, seed: int = 0) -> dict[str, Any]:
    """Both strategies through the harness at a TheoryConfig's Gaussian sizes (a tenth of its chains, at most 10
    generations: the harness builds every pool literally)."""
    sizes = {"samples": config.gaussian_samples, "generations": min(10, config.gaussian_generations),
             "chains": max(50, config.gaussian_chains // 10), "mu0": config.gaussian_mu0,
             "sigma0": config.gaussian_sigma0}
    return {s: gaussian_through_harness(s, seed=seed + i, **sizes) for i, s in enumerate(("replace", "accumulate"))}
