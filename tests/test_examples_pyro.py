"""The Pyro examples (discrete VAE, Gaussian mixture, semi-supervised VAE M2): quick runs that write finite results, and
the promise they make: the model and guide are written once with plain discrete sites, and
``relax(...)`` is the only thing that changes between runs."""

import importlib
import inspect
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch

import pyro_ext
from pyro_ext.relax import ONE_HOT_CLASSES

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf", re.IGNORECASE)


def _run_quick(script: str, out_dir: Path, *, warnings_as_errors: bool = False) -> str:
    """Run an example in a fresh interpreter (the examples set their own thread counts and
    import ArviZ/matplotlib) with an empty cache and matplotlib config of its own, as on a
    new machine: first-import-of-the-day notices such as ArviZ's show in every run."""
    env = dict(
        os.environ,
        MPLBACKEND="Agg",
        PYTHONPATH=str(ROOT),
        XDG_CACHE_HOME=str(out_dir / "fresh-cache"),
        MPLCONFIGDIR=str(out_dir / "fresh-mplconfig"),
    )
    flags = ["-W", "error"] if warnings_as_errors else []
    out = subprocess.run(
        [sys.executable, *flags, str(ROOT / "examples" / script), "--quick", "--out-dir", str(out_dir)],
        cwd=out_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


def _table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the first markdown table, as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [row for row in rows[1:] if not row[0].startswith("---")]  # rows[0] is the header


def _floats(cell: str) -> list[float]:
    return [float(token) for token in NUMBER.findall(cell)]


def test_vae_quick_writes_finite_results(tmp_path):
    _run_quick("vae_pyro.py", tmp_path)
    rows = _table_rows((tmp_path / "vae_pyro.md").read_text())
    assert [row[0] for row in rows] == ["reinforce", "gumbel", "reinmax", "redge", "reindge"]
    for row in rows:
        held_out = [x for cell in row[2:-3] for x in _floats(cell)] + _floats(row[-3])  # seeds, mean ± sd
        assert len(held_out) >= 3 and all(math.isfinite(x) and x < 0 for x in held_out[:-1]), row
        assert math.isfinite(held_out[-1]), row  # the sd: two seeds in quick mode
    assert (tmp_path / "vae_pyro.png").stat().st_size > 1000


def test_mixture_quick_writes_finite_results(tmp_path):
    # -W error on a fresh cache: ArviZ 0.23 warns (FutureWarning) on its first import of each day
    # and stamps the day in $XDG_CACHE_HOME/arviz/daily_warning; a machine that imported it
    # earlier today passes where a new one fails, unless the example filters that notice.
    _run_quick("mixture_pyro.py", tmp_path, warnings_as_errors=True)
    assert (tmp_path / "fresh-cache" / "arviz" / "daily_warning").exists()  # the first-import path ran
    text = (tmp_path / "mixture_pyro.md").read_text()
    rows = _table_rows(text)
    assert rows[0][0] == "exact" and {"redge", "gumbel"} <= {row[0] for row in rows}
    for row in rows:
        means, weights, gap, loglik = _floats(row[2]), _floats(row[3]), _floats(row[4]), _floats(row[5])
        assert len(means) == 3 and len(weights) == 3 and len(gap) == 1 and len(loglik) == 1, row
        assert all(math.isfinite(x) for x in means + weights + gap + loglik), row
        assert abs(sum(weights) - 1) < 2e-3, row  # printed to 3 decimals
    assert text.count("r_hat") == len(rows)  # one ArviZ summary per fit
    assert (tmp_path / "mixture_pyro.png").stat().st_size > 1000


# --- only relax(...) differs between runs ----------------------------------------------------

RELAXED_NAMES = sorted(
    {cls.__name__ for cls in ONE_HOT_CLASSES.values()}
    | {name for name in pyro_ext.__all__ if isinstance(getattr(pyro_ext, name), type) and name != "OneHotCategorical"}
)


@pytest.fixture
def examples(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    return {name: importlib.import_module(f"examples.{name}") for name in ("vae_pyro", "mixture_pyro", "ssvae_pyro")}


def _program_sources(examples) -> dict[str, str]:
    vae, mixture, ssvae = examples["vae_pyro"], examples["mixture_pyro"], examples["ssvae_pyro"]
    programs = {
        "vae model": vae.DiscreteVAE.model,
        "vae guide": vae.DiscreteVAE.guide,
        "mixture model": mixture.model,
        "mixture guide": mixture.guide,
        "mixture guide_means": mixture.guide_means,
        "ssvae model": ssvae.SSVAE.model,
        "ssvae guide": ssvae.SSVAE.guide,
    }
    return {name: inspect.getsource(fn) for name, fn in programs.items()}


def test_models_and_guides_hold_no_relaxed_class(examples):
    assert "REDGE" in RELAXED_NAMES and "RelaxedOneHotCategoricalStraightThrough" in RELAXED_NAMES
    for name, source in _program_sources(examples).items():
        found = [cls for cls in RELAXED_NAMES if re.search(rf"\b{cls}\b", source)]
        assert not found, f"{name} names relaxed classes {found}; only relax(...) may introduce them"
        if "means" not in name:
            assert "OneHotCategorical(" in source, name


def test_runs_differ_only_by_relax(examples):
    vae, mixture = examples["vae_pyro"], examples["mixture_pyro"]
    setups = {
        "vae": inspect.getsource(vae.training_setup),
        "mixture": inspect.getsource(mixture.svi_setup),
        "ssvae": inspect.getsource(examples["ssvae_pyro"].training_setup),
    }
    for name, source in setups.items():
        assert "relax(" in source and not [cls for cls in RELAXED_NAMES if re.search(rf"\b{cls}\b", source)], name

    pyro.set_rng_seed(0)
    model = vae.DiscreteVAE(n_pixels=12)
    x = torch.ones(3, 12)
    for estimator in vae.ESTIMATORS:
        guide, _ = vae.training_setup(model, estimator)
        site = pyro.poutine.trace(guide).get_trace(x).nodes["z"]
        leaf = site["fn"].base_dist
        if estimator == "reinforce":  # the plain guide: score-function gradients only
            assert isinstance(leaf, torch.distributions.OneHotCategorical) and not leaf.has_rsample
        else:
            assert type(leaf) is ONE_HOT_CLASSES[estimator], (estimator, type(leaf))
        assert site["fn"].batch_shape == (3,) and site["fn"].event_shape == (vae.N_LATENT, vae.N_CLASSES)
        assert set(site["value"].unique().tolist()) <= {0.0, 1.0}  # exact one-hot values for every run


# --- the semi-supervised VAE (M2): enumerate the label, or relax it ---------------------------


def test_ssvae_quick_learns_and_scales(examples, tmp_path):
    # In this process (pyro, torch and their compilers are imported already): a subprocess
    # would spend most of its seconds importing them again.
    ssvae = examples["ssvae_pyro"]
    methods = ["enumerate", "score_function", "reinmax", "concrete"]
    ssvae.main(
        ["--quick", "--methods", *methods, "--out-dir", str(tmp_path), "--threads", str(torch.get_num_threads())]
    )
    text = (tmp_path / "ssvae.md").read_text()
    rows = _table_rows(text.split("## Scaling")[0])
    assert [row[0] for row in rows] == methods
    for name, _, accuracy, elbo, *_ in rows:
        assert len(_floats(elbo)) == 1 and math.isfinite(_floats(elbo)[0]) and _floats(elbo)[0] < 0, name
        assert 0 <= _floats(accuracy)[0] <= 1, name
        if name != "score_function":  # 25 quick steps of 200 held-out digits; chance is 0.1
            assert _floats(accuracy)[0] > 0.3, (name, accuracy)
    scaling = [line for line in text.split("## Scaling")[1].splitlines() if re.match(r"\| \d", line)]
    assert [line.split("|")[1].strip() for line in scaling] == ["1", "2"]
    for line in scaling:  # enumerate and relax both timed, in milliseconds
        enum_ms, relax_ms = (float(cell) for cell in line.split("|")[3:5])
        assert 0 < enum_ms < 1e4 and 0 < relax_ms < 1e4, line
    assert (tmp_path / "ssvae.png").stat().st_size > 1000


def test_ssvae_guides_per_method(examples):
    ssvae = examples["ssvae_pyro"]
    assert ssvae.METHODS == ["enumerate", "score_function", *ONE_HOT_CLASSES]
    pyro.set_rng_seed(0)
    x = torch.bernoulli(torch.full((5, 12), 0.5))
    for method in ssvae.METHODS:
        vae = ssvae.SSVAE(n_pixels=12, z_dim=3, hidden=8)
        model, guide, _ = ssvae.training_setup(vae, method)
        guide_trace = pyro.poutine.trace(guide).get_trace(x)
        y = guide_trace.nodes["y"]
        if method in ("enumerate", "score_function"):  # the plain guide's site
            assert type(y["fn"]) is pyro_ext.OneHotCategorical and not y["fn"].has_rsample
            assert y["infer"].get("enumerate") == ("parallel" if method == "enumerate" else None), method
        else:
            assert type(y["fn"]) is ONE_HOT_CLASSES[method], (method, type(y["fn"]))
            assert y["fn"].has_rsample and y["value"].requires_grad, method  # the classifier learns through y's value
        assert y["fn"].batch_shape == (5,) and y["value"].shape == (5, 10)
        if method != "concrete":
            assert set(y["value"].unique().tolist()) <= {0.0, 1.0} and (y["value"].sum(-1) == 1).all(), method
        model_y = pyro.poutine.trace(pyro.poutine.replay(model, trace=guide_trace)).get_trace(x).nodes["y"]
        expected = ONE_HOT_CLASSES["concrete"] if method == "concrete" else torch.distributions.OneHotCategorical
        assert isinstance(model_y["fn"], expected), (method, type(model_y["fn"]))  # concrete: model relaxed too
        labels = torch.nn.functional.one_hot(torch.arange(5) % 10, 10).float()
        labelled = pyro.poutine.trace(guide).get_trace(x, labels).nodes
        assert "y" not in labelled and "z" in labelled  # a labelled digit: y is observed in the model only
    with pytest.raises(ValueError, match="aux_weight must be >= 0"):
        ssvae.SSVAE(n_pixels=12, aux_weight=-1.0)


def test_ssvae_heldout_elbo_sums_the_label_exactly(examples):
    # The held-out ELBO (y enumerated by TraceEnum_ELBO) against the sum written out: for each
    # digit, sum_c q(c|x) * (ELBO given y = c - log q(c|x)), each term a Trace_ELBO with y observed.
    # z is sampled on both sides: 4,000 particles, seeded; tolerance 0.05 nats per digit.
    ssvae = examples["ssvae_pyro"]
    pyro.set_rng_seed(1)
    pyro.clear_param_store()
    vae = ssvae.SSVAE(n_pixels=6, z_dim=1, hidden=4)
    x = torch.bernoulli(torch.full((3, 6), 0.5))
    _, enumerated = ssvae.heldout_scores(vae, x, torch.zeros(3, dtype=torch.long), num_particles=4000)
    elbo = pyro.infer.Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1)
    by_hand = []
    with torch.no_grad():
        for digit in x:
            log_q = vae.classifier_logits(digit[None])[0, 0].log_softmax(-1)
            labels = torch.eye(10)
            given = torch.tensor([-elbo.loss(vae.model, vae.guide, digit[None], labels[c][None]) for c in range(10)])
            by_hand.append((log_q.exp() * (given - log_q)).sum())
    assert abs(enumerated - torch.stack(by_hand).mean().item()) < 0.05, (enumerated, by_hand)
