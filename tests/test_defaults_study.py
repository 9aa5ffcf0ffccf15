"""benchmarks/defaults.py (issue 10's defaults study): its problems' exact objectives against
independent float64 computations, and the rule on a quick run."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))

import _mixtures  # noqa: E402
import _spike_slab  # noqa: E402
import autoguide_defaults as ad  # noqa: E402
import defaults  # noqa: E402


def test_spike_slab_log_evidence_matches_numpy():
    x, y, _ = _spike_slab.design()
    gammas = _spike_slab.configurations(x.shape[1])[::37]
    ours = defaults.log_evidence(torch.tensor(x), torch.tensor(y), torch.tensor(gammas, dtype=torch.float64), 1.0, 1.0)
    np.testing.assert_allclose(ours.numpy(), _spike_slab.log_evidence(x, y, gammas), rtol=1e-10)


def test_spike_slab_posterior_table_gives_exact_inclusion():
    problem = defaults.spike_slab()
    table = ad.posterior_table(problem).double()  # log p(y, gamma) over the 2^10 joint states (float32 model)
    states = ad._joint_states(problem)["g"][..., 1].double()  # (M, p)
    post = torch.softmax(table, 0)
    x, y, _ = _spike_slab.design()
    # float32 log-evidences of about -120 nats: 1e-4 absolute on probabilities
    np.testing.assert_allclose((post[:, None] * states).sum(0).numpy(), _spike_slab.exact_inclusion(x, y), atol=1e-4)


def test_fixed_mixture_kl_is_zero_at_exact_posterior_and_matches_mean_kl():
    problem = defaults.fixed_mixture()
    exact = _mixtures.fixed_posterior()
    at_post = torch.tensor(np.log(exact), dtype=torch.float32)[None]
    assert abs(float(ad.exact_kl(problem, {"z": at_post})[0])) < 1e-5
    uniform = torch.zeros(1, 6, 4)
    np.testing.assert_allclose(
        float(ad.exact_kl(problem, {"z": uniform})[0]), _mixtures.mean_kl(np.full((6, 4), 0.25), exact), rtol=1e-4
    )


def test_polynomial_kl_against_closed_form():
    problem = defaults.polynomial(3.0, n_vars=3)
    logits = torch.tensor([[[0.3, -0.2], [1.0, 0.0], [0.0, 2.0]]])
    q = torch.softmax(logits[0].double(), -1)
    energy = defaults.POLY_BETA * torch.tensor([0.45**3, 0.55**3], dtype=torch.float64)
    log_p = torch.log_softmax(-energy, -1)
    expected = (q * (q.log() - log_p)).sum(-1).mean()
    assert float(ad.exact_kl(problem, {"x": logits})[0]) == pytest.approx(float(expected), rel=1e-5)


def test_quick_study_rule(tmp_path):
    args = defaults.parse_args(["--quick", "--out", str(tmp_path / "d.md")])
    kls, problems, grid, *_ = defaults.run(args)
    reg = ad.regrets(kls)
    for p in problems:
        assert min(reg[c][p.name] for c in reg) == 0.0
        assert all(r >= 0 for r in (reg[c][p.name] for c in reg))
    worst = {c: max(r.values()) for c, r in reg.items()}
    assert ad.choose(kls) == min(worst, key=worst.get)
    fam = defaults.family_winners(reg, grid)
    assert set(fam) == {e for e, _ in grid}
    for e, c in fam.items():
        assert all(worst[c] <= worst[defaults.label(e2, h)] for e2, h in grid if e2 == e)
    chosen, argmin, tol, tied = defaults.choose_with_ties(kls, incumbent="no such config")
    assert (chosen, argmin, tol) == (ad.choose(kls), ad.choose(kls), 0.0)  # one seed: no sd, no ties
    assert all(worst[c] == worst[argmin] for c in tied)
    # two seeds: the tolerance is the argmin's largest sd, and a tied incumbent stays
    kls2 = {
        c: {n: torch.stack([v.reshape(-1)[0], v.reshape(-1)[0] + 0.01 * (i + 1)]) for n, v in r.items()}
        for i, (c, r) in enumerate(kls.items())
    }
    reg2 = ad.regrets(kls2)
    chosen2, argmin2, tol2, tied2 = defaults.choose_with_ties(
        kls2, incumbent=max(kls2, key=lambda c: max(reg2[c].values()))
    )
    assert tol2 > 0 and argmin2 in tied2
    assert all(max(reg2[c].values()) <= max(reg2[argmin2].values()) + tol2 for c in tied2)
    assert chosen2 == argmin2 or chosen2 in tied2
    text = defaults.markdown(kls, problems, grid, 5, 1, 0.0, "quick")
    assert f"relax / AutoRelaxed: {ad.choose(kls)}" in text or "relax / AutoRelaxed: reinmax temperature=1" in text
