"""Theory anchors: two exactly solvable collapse recursions, simulated and in closed form.

The report plots each simulation against its closed form as a check that the harness's
notion of "generation" and "replace / accumulate" is the one the papers analyse::

    .venv/bin/python -m rag_bench.theory.recursions   # prints simulated vs closed form, a few seconds

Generation convention (the harness's): generation 0 is fitted to real data, generation g
to data produced by generation g-1. So generation g is fit number ``n = g + 1`` in the
papers' notation; every formula below is written in ``n``.

1. Recursive Gaussian fitting (Shumailov et al. 2024, Nature, "AI models collapse when
   trained on recursively generated data", Theorem 3.1 and supplementary 3.1.1).
   Start from N(mu_0, sigma_0^2). Fit n draws M samples from N(mu_{n-1}, sigma_{n-1}^2)
   and sets mu_n to the sample mean and sigma_n^2 to the sample variance, unbiased
   (divide by M-1) or MLE (divide by M). Cochran's theorem gives
   sigma_n^2 = sigma_{n-1}^2 * chi2_{M-1} / D with D = M-1 (unbiased) or M (MLE), the
   chi-square independent of mu_n ~ N(mu_{n-1}, sigma_{n-1}^2 / M). Hence, with
   r = (M-1)/D, c = sqrt(2/D) * Gamma(M/2) / Gamma((M-1)/2) (the mean of sqrt(chi2_{M-1}/D)):

   * E[sigma_n^2] = sigma_0^2 r^n: a martingale (r = 1) when unbiased, sigma_0^2 ((M-1)/M)^n for MLE;
   * E[sigma_n] = sigma_0 c^n, decreasing since c < 1 (Jensen);
   * E[log sigma_n^2] = log sigma_0^2 + n (digamma((M-1)/2) + log(2/D)); the drift is negative
     (Jensen), so by the strong law log(sigma_n^2)/n tends to it and sigma_n^2 -> 0 almost surely
     even though the unbiased E[sigma_n^2] stays sigma_0^2 (Theorem 3.1);
   * E[(mu_n - mu_0)^2] = sum_{k<n} E[sigma_k^2] / M = sigma_0^2 n / M (unbiased) or
     sigma_0^2 (1 - r^n) (MLE), since mu is a martingale with increments of variance sigma_k^2 / M;
   * W_2^2(N(mu_n, sigma_n^2), N(mu_0, sigma_0^2)) = (mu_n - mu_0)^2 + (sigma_n - sigma_0)^2, so
     E[W_2^2] = E[(mu_n - mu_0)^2] + E[sigma_n^2] - 2 sigma_0 E[sigma_n] + sigma_0^2, which is
     sigma_0^2 (n/M + 2 - 2 c^n) -> infinity when unbiased (Theorem 3.1) and sigma_0^2 (2 - 2 c^n)
     for MLE.

2. Linear regression, replace against accumulate (Gerstgrasser et al. 2024, "Is Model Collapse
   Inevitable? Breaking the Curse of Recursion by Accumulating Real and Synthetic Data", the
   linear-model theorems, in the fixed-design setting of Dohmatob et al. 2024). Each chain
   draws w* ~ N(0, I_d) and one design X (T x d, iid N(0, 1) entries) used by every fit.
   Fit 1 is OLS on y_1 = X w* + E_1; fit i > 1 labels the same X with the previous fit,
   y_i = X w_{i-1} + E_i, with fresh noise E_i ~ N(0, sigma^2 I_T). ``replace`` fits OLS on
   (X, y_n) alone; ``accumulate`` fits OLS on all n blocks stacked, real block included.
   The error is the excess test risk under isotropic test inputs x ~ N(0, I_d):
   err_n = E_x[(x.w_n - x.w*)^2] = ||w_n - w*||^2. With A = (X^T X)^{-1} X^T,
   replace gives w_n - w* = sum_{i<=n} A E_i and accumulate gives w_n - w* = sum_{i<=n} A E_i / i,
   and E[tr((X^T X)^{-1})] = d / (T - d - 1) (inverse Wishart mean), so

   * replace:    E[err_n] = sigma^2 d / (T - d - 1) * n, linear in n;
   * accumulate: E[err_n] = sigma^2 d / (T - d - 1) * sum_{i<=n} 1/i^2 < (pi^2 / 6) * E[err_1].

   A fresh design per fit leaves the replace formula unchanged (the increments stay independent)
   but breaks the exact accumulate one (the stacked Gram matrix no longer factors), so the
   design here is fixed per chain, as in the paper.

The simulations draw the samples and solve the fits literally (sample moments, normal
equations of the stacked data), so they check the derivations rather than restate them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
from scipy.special import digamma, gammaln

from rag_bench.config import ConfigBase, ConfigError

GAUSSIAN_QUANTITIES = ("var", "sd", "log_var", "mean_shift_sq", "w2_sq")
Estimator = Literal["unbiased", "mle"]
Strategy = Literal["replace", "accumulate"]
Seed = int | np.random.SeedSequence


@dataclasses.dataclass(frozen=True, kw_only=True)
class TheoryConfig(ConfigBase):
    """Sizes of the theory-anchor simulations run by ``theory_report``."""

    gaussian_samples: int = 50  # M: samples drawn to fit each generation's Gaussian
    gaussian_generations: int = 30  # fits per chain, generation 0 included
    gaussian_chains: int = 4000  # independent chains; the standard error shrinks as 1/sqrt(chains)
    gaussian_mu0: float = 0.0  # mean of the original distribution
    gaussian_sigma0: float = 1.0  # standard deviation of the original distribution
    regression_dim: int = 10  # d: number of features
    regression_samples: int = 50  # T: rows of the design, the same for every fit (needs T > d + 3)
    regression_noise: float = 1.0  # sigma: standard deviation of the label noise
    regression_generations: int = 10  # fits per chain, generation 0 (real labels) included
    regression_chains: int = 2000  # independent chains (each with its own X and w*)

    def __post_init__(self) -> None:
        try:
            _check_gaussian(self.gaussian_samples, self.gaussian_generations, self.gaussian_chains,
                            self.gaussian_sigma0)
            _check_regression(self.regression_dim, self.regression_samples, self.regression_noise,
                              self.regression_generations, self.regression_chains)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------------------------------
# Recursive Gaussian fitting


def _check_gaussian(samples: int, generations: int, chains: int, sigma0: float) -> None:
    if samples < 2:
        raise ValueError(f"gaussian_samples (M) must be >= 2, got {samples}")
    if generations < 1:
        raise ValueError(f"gaussian_generations must be >= 1, got {generations}")
    if chains < 2:
        raise ValueError(f"gaussian_chains must be >= 2 to give a standard error, got {chains}")
    if not sigma0 > 0:
        raise ValueError(f"gaussian_sigma0 must be positive, got {sigma0}")


def _divisor(samples: int, estimator: str) -> int:
    if estimator == "unbiased":
        return samples - 1
    if estimator == "mle":
        return samples
    raise ValueError(f"estimator must be 'unbiased' or 'mle', got {estimator!r}")


def simulate_gaussian(samples: int, generations: int, chains: int, seed: Seed = 0, *,
                      estimator: Estimator = "unbiased", mu0: float = 0.0, sigma0: float = 1.0) -> dict[str, Any]:
    """Run ``chains`` independent recursive fits; per generation, the chain mean and its standard error.

    Returns arrays of length ``generations``: ``generation``, ``fits`` (= generation + 1), and for
    each q in GAUSSIAN_QUANTITIES ``mean_<q>`` and ``se_<q>``, plus ``median_var`` (no closed form;
    it shows the almost-sure collapse that the mean hides).
    """
    _check_gaussian(samples, generations, chains, sigma0)
    ddof = samples - _divisor(samples, estimator)
    rng = np.random.default_rng(seed)
    mu = np.full(chains, float(mu0))
    sigma = np.full(chains, float(sigma0))
    per_generation: dict[str, list[np.ndarray]] = {q: [] for q in GAUSSIAN_QUANTITIES}
    for _ in range(generations):
        draws = mu[:, None] + sigma[:, None] * rng.standard_normal((chains, samples))
        mu = draws.mean(axis=1)
        var = draws.var(axis=1, ddof=ddof)
        sigma = np.sqrt(var)
        per_generation["var"].append(var)
        per_generation["sd"].append(sigma)
        per_generation["log_var"].append(np.log(var))
        per_generation["mean_shift_sq"].append((mu - mu0) ** 2)
        per_generation["w2_sq"].append((mu - mu0) ** 2 + (sigma - sigma0) ** 2)
    out: dict[str, Any] = {"generation": np.arange(generations), "fits": np.arange(1, generations + 1)}
    for q, values in per_generation.items():
        stacked = np.stack(values)  # (generations, chains)
        out[f"mean_{q}"] = stacked.mean(axis=1)
        out[f"se_{q}"] = stacked.std(axis=1, ddof=1) / math.sqrt(chains)
    out["median_var"] = np.median(np.stack(per_generation["var"]), axis=1)
    return out


def gaussian_closed_form(samples: int, generations: int, *, estimator: Estimator = "unbiased",
                         mu0: float = 0.0, sigma0: float = 1.0) -> dict[str, Any]:
    """The exact expectations of the module docstring, keyed like ``simulate_gaussian``'s means."""
    _check_gaussian(samples, generations, 2, sigma0)
    divisor = _divisor(samples, estimator)
    n = np.arange(1, generations + 1, dtype=float)
    var_ratio = (samples - 1) / divisor
    sd_ratio = math.exp(0.5 * math.log(2.0 / divisor) + gammaln(samples / 2) - gammaln((samples - 1) / 2))
    log_drift = float(digamma((samples - 1) / 2) + math.log(2.0 / divisor))
    s0 = sigma0**2
    mean_var = s0 * var_ratio**n
    mean_sd = sigma0 * sd_ratio**n
    # sum_{k=0}^{n-1} E[sigma_k^2] / M: a geometric series, or n / M when the ratio is exactly 1
    mean_shift_sq = s0 * n / samples if divisor == samples - 1 else s0 * (1 - var_ratio**n)
    return {
        "generation": np.arange(generations),
        "fits": n.astype(int),
        "mean_var": mean_var,
        "mean_sd": mean_sd,
        "mean_log_var": math.log(s0) + n * log_drift,
        "mean_mean_shift_sq": mean_shift_sq,
        "mean_w2_sq": mean_shift_sq + mean_var - 2 * sigma0 * mean_sd + s0,
        "log_var_drift": log_drift,
        "sd_ratio": sd_ratio,
    }


# ---------------------------------------------------------------------------------------
# Linear regression: replace against accumulate


def _check_regression(dim: int, samples: int, noise: float, generations: int, chains: int) -> None:
    if dim < 1:
        raise ValueError(f"regression_dim (d) must be >= 1, got {dim}")
    # T > d + 1 makes E[tr((X^T X)^{-1})] finite; T > d + 3 makes its variance finite, so the SE means something
    if samples <= dim + 3:
        raise ValueError(f"regression_samples (T) must be > regression_dim + 3 = {dim + 3}, got {samples}")
    if not noise > 0:
        raise ValueError(f"regression_noise must be positive, got {noise}")
    if generations < 1:
        raise ValueError(f"regression_generations must be >= 1, got {generations}")
    if chains < 2:
        raise ValueError(f"regression_chains must be >= 2 to give a standard error, got {chains}")


def simulate_regression(dim: int, samples: int, noise: float, generations: int, chains: int, seed: Seed = 0, *,
                        strategy: Strategy = "replace") -> dict[str, Any]:
    """Iterated OLS under ``replace`` or ``accumulate``; per generation the mean of ||w_hat - w*||^2 and its SE."""
    _check_regression(dim, samples, noise, generations, chains)
    if strategy not in ("replace", "accumulate"):
        raise ValueError(f"strategy must be 'replace' or 'accumulate', got {strategy!r}")
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal((chains, dim))
    design = rng.standard_normal((chains, samples, dim))
    design_t = design.transpose(0, 2, 1)
    gram_block = design_t @ design  # X^T X, (chains, d, d)
    # the normal equations of the stacked data are sums over blocks: sum_i X^T X and sum_i X^T y_i
    gram = np.zeros_like(gram_block)
    moment = np.zeros((chains, dim))
    labeller = w_star
    errors = []
    for _ in range(generations):
        labels = np.einsum("ctd,cd->ct", design, labeller) + noise * rng.standard_normal((chains, samples))
        block_moment = np.einsum("cdt,ct->cd", design_t, labels)
        if strategy == "replace":
            gram, moment = gram_block, block_moment
        else:
            gram, moment = gram + gram_block, moment + block_moment
        labeller = np.linalg.solve(gram, moment[..., None])[..., 0]
        errors.append(((labeller - w_star) ** 2).sum(axis=1))
    stacked = np.stack(errors)  # (generations, chains)
    return {
        "generation": np.arange(generations),
        "fits": np.arange(1, generations + 1),
        "mean_error": stacked.mean(axis=1),
        "se_error": stacked.std(axis=1, ddof=1) / math.sqrt(chains),
    }


def regression_closed_form(dim: int, samples: int, noise: float, generations: int, *,
                           strategy: Strategy = "replace") -> dict[str, Any]:
    """E[||w_hat - w*||^2] per generation (module docstring), and the accumulate bound pi^2/6 * E[err_1]."""
    _check_regression(dim, samples, noise, generations, 2)
    n = np.arange(1, generations + 1, dtype=float)
    first = noise**2 * dim / (samples - dim - 1)
    if strategy == "replace":
        mean_error = first * n
    elif strategy == "accumulate":
        mean_error = first * np.cumsum(1.0 / n**2)
    else:
        raise ValueError(f"strategy must be 'replace' or 'accumulate', got {strategy!r}")
    return {"generation": np.arange(generations), "fits": n.astype(int), "mean_error": mean_error,
            "first_error": first, "accumulate_bound": math.pi**2 / 6 * first}


# ---------------------------------------------------------------------------------------
# The report's series


def theory_report(seed: int = 0, config: TheoryConfig | None = None) -> dict[str, Any]:
    """Run both anchors at ``config``'s sizes; JSON-ready series of simulated, SE and closed form per generation."""
    cfg = config or TheoryConfig()
    seeds = np.random.SeedSequence(seed).spawn(4)
    gaussian: dict[str, Any] = {}
    for estimator, child in zip(("unbiased", "mle"), seeds[:2], strict=True):
        kwargs = {"estimator": estimator, "mu0": cfg.gaussian_mu0, "sigma0": cfg.gaussian_sigma0}
        sim = simulate_gaussian(cfg.gaussian_samples, cfg.gaussian_generations, cfg.gaussian_chains, child, **kwargs)
        exact = gaussian_closed_form(cfg.gaussian_samples, cfg.gaussian_generations, **kwargs)
        gaussian[estimator] = {
            "generation": sim["generation"].tolist(),
            "simulated": {q: sim[f"mean_{q}"].tolist() for q in GAUSSIAN_QUANTITIES},
            "se": {q: sim[f"se_{q}"].tolist() for q in GAUSSIAN_QUANTITIES},
            "closed_form": {q: exact[f"mean_{q}"].tolist() for q in GAUSSIAN_QUANTITIES},
            "median_var": sim["median_var"].tolist(),
        }
    regression: dict[str, Any] = {}
    sizes = (cfg.regression_dim, cfg.regression_samples, cfg.regression_noise, cfg.regression_generations)
    for strategy, child in zip(("replace", "accumulate"), seeds[2:], strict=True):
        sim = simulate_regression(*sizes, cfg.regression_chains, child, strategy=strategy)
        exact = regression_closed_form(*sizes, strategy=strategy)
        regression[strategy] = {
            "generation": sim["generation"].tolist(),
            "simulated": sim["mean_error"].tolist(),
            "se": sim["se_error"].tolist(),
            "closed_form": exact["mean_error"].tolist(),
        }
    regression["accumulate_bound"] = regression_closed_form(*sizes)["accumulate_bound"]
    return {"seed": seed, "config": cfg.to_dict(), "gaussian": gaussian, "regression": regression}


def _print_report(report: dict[str, Any]) -> None:
    for estimator, series in report["gaussian"].items():
        print(f"Gaussian, {estimator} variance: simulated (closed form) [z = (sim - exact) / SE]")
        print("gen  " + "  ".join(f"{q:>30}" for q in GAUSSIAN_QUANTITIES))
        for g in series["generation"]:
            cells = []
            for q in GAUSSIAN_QUANTITIES:
                sim, exact, se = series["simulated"][q][g], series["closed_form"][q][g], series["se"][q][g]
                cells.append(f"{sim:9.4f} ({exact:9.4f}) [{(sim - exact) / se:+5.1f}]")
            print(f"{g:3d}  " + "  ".join(cells))
    for strategy in ("replace", "accumulate"):
        series = report["regression"][strategy]
        print(f"Regression, {strategy}: E||w_hat - w*||^2 simulated (closed form) [z]")
        for g, sim, exact, se in zip(series["generation"], series["simulated"], series["closed_form"],
                                     series["se"], strict=True):
            print(f"{g:3d}  {sim:8.4f} ({exact:8.4f}) [{(sim - exact) / se:+5.1f}]")
    print(f"accumulate bound pi^2/6 * E[err_1] = {report['regression']['accumulate_bound']:.4f}")


if __name__ == "__main__":
    _print_report(theory_report())
