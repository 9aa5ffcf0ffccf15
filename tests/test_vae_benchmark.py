"""``benchmarks/vae.py``: its 2-class one-hot latents are exactly Bernoulli latents (the model and
the guide score the same numbers as when written with ``dist.Bernoulli``), its batches are full
seeded reshuffles, and the script in ``--quick`` mode writes one finite row per estimator."""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "vae.py"
_spec = importlib.util.spec_from_file_location("vae_benchmark", SCRIPT)
vae = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = vae  # dataclasses look their module up there
_spec.loader.exec_module(vae)


def _bernoulli_model(net, x):
    """The benchmark's model written with a Bernoulli latent per bit (the decoder shared)."""
    with pyro.plate("digits", x.shape[0]):
        z = pyro.sample("z", dist.Bernoulli(probs=x.new_full((vae.N_BITS,), 0.5)).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=net.decoder(z)).to_event(1), obs=x)


def _site_log_probs(fn, x, z) -> dict[str, torch.Tensor]:
    """Per-digit log-probabilities of each site of ``fn(x)`` with the latent ``z`` fixed."""
    trace = poutine.trace(poutine.condition(fn, data={"z": z})).get_trace(x)
    trace.compute_log_prob()
    return {name: site["log_prob"] for name, site in trace.nodes.items() if site["type"] == "sample"}


def test_one_hot_bits_are_bernoulli_latents():
    torch.manual_seed(0)
    net = vae.BernoulliVAE(784).double()
    x = torch.bernoulli(torch.full((6, 784), 0.3, dtype=torch.float64))
    bits = torch.bernoulli(torch.full((6, vae.N_BITS), 0.5, dtype=torch.float64))
    one_hot = torch.stack([1 - bits, bits], dim=-1)
    ours, theirs = _site_log_probs(net.model, x, one_hot), _site_log_probs(lambda x: _bernoulli_model(net, x), x, bits)
    # the same float64 numbers up to rounding: log(1/2) per bit, and the decoder fed the same bits
    for name in ("z", "x"):
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-10)
    torch.testing.assert_close(
        ours["z"], torch.full((6,), vae.N_BITS * math.log(0.5), dtype=torch.float64), rtol=0, atol=1e-10
    )
    # guide: a one-hot over {0, 1} with logits (l_0, l_1) is Bernoulli(logits=l_1 - l_0) on the bit
    logits = net.encoder(x).unflatten(-1, (vae.N_BITS, 2))
    expected = dist.Bernoulli(logits=logits[..., 1] - logits[..., 0]).log_prob(bits).sum(-1)
    torch.testing.assert_close(_site_log_probs(net.guide, x, one_hot)["z"], expected, rtol=0, atol=1e-10)


def test_batch_order_is_full_seeded_reshuffles():
    batches = vae.batch_order(10, 3, steps=7, seed=4)
    assert len(batches) == 7 and all(len(b) == 3 for b in batches)  # the 10th digit is left out of each epoch
    for epoch in (batches[0:3], batches[3:6]):
        assert len(torch.cat(epoch).unique()) == 9
    assert all(torch.equal(a, b) for a, b in zip(batches, vae.batch_order(10, 3, steps=7, seed=4)))


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]  # drop the header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not line.startswith("| ---")]


def test_script_quick(tmp_path):
    out = tmp_path / "vae.md"
    threads = torch.get_num_threads()
    try:  # one thread: with torch's default threads the small MLPs crawl on a shared CPU (6x slower here)
        text = vae.main(["--quick", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert out.read_text() == text + "\n"
    assert out.with_suffix(".png").stat().st_size > 1000
    sections = text.split("\n## ")[1:]
    assert [s.split(":")[0] for s in sections] == list(vae.FAMILIES)
    for section in sections:
        rows = _rows(section)
        assert [row[0] for row in rows] == list(vae.ESTIMATORS)
        for row in rows:  # estimator, hyperparameters, seed 0, mean, gain, beats, steps/s
            neg_elbo, mean, speed = float(row[2]), float(row[3]), float(row[-1])
            assert 0 < neg_elbo < math.inf and mean == neg_elbo and speed > 0, row
            assert (row[4] == "") == (row[0] == "reinforce"), row  # a gain for every relaxed estimator
