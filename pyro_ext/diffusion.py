r"""Guided discrete diffusion in torch: RDM's masked diffusion (training loss and
route-and-denoise sampler) and reward guidance of any denoiser through the relaxed estimators.

A *denoiser* is any callable ``denoiser(x_t, t) -> logits``: ``x_t`` a ``LongTensor`` of
tokens in ``0 .. n_classes`` (``n_classes`` is the mask token), ``t`` the diffusion time in
``(0, 1]`` per sequence, ``logits`` over the ``n_classes`` clean tokens. It may be a module, a
compiled model or a plain function; the sampler calls it once per step, under
``torch.no_grad()``, and never modifies or differentiates it.

- :class:`MaskedDiffusion`: the absorbing forward process ``q_sample`` (each free token is
  masked with probability ``t``) and RDM's reweighted cross-entropy ``loss``.
- :func:`sample`: ``n_steps`` denoiser calls from ``t = 1`` to ``t = 0``. Each step proposes
  a clean token for every noisy position, then *routes*: the ``n_decode`` positions with the
  highest scores are denoised, the rest stay (or, with ``renoise``, become) masked, where
  ``n_decode`` makes ``floor(n_free * fraction(t_next))`` positions noisy after the step
  (``relaxed_dists.diffusion``; the last step denoises everything). Scores: the proposal's
  log-probability (RDM's adaptive top-k; plus Gumbel noise times ``routing_noise``), or
  uniform noise (random-order unmasking).
- :class:`Guidance` and :func:`tilt`: reward guidance (Gourevitch et al. 2026, section on
  guidance). At each step the denoiser's logits ``l`` are replaced by free logits ``phi``
  that minimise, by ``n_opt`` Adam steps from ``phi = l``,

  .. math:: J(\phi) = \mathbb{E}_{\hat x \sim q_\phi}\big[-r(\hat x)\big]
            + \kappa\, \mathrm{KL}\big(\mathrm{Cat}(\phi)\,\|\,\mathrm{Cat}(l)\big),

  ``x_hat`` a hard sample of one of the library's estimator classes (REDGE, ReinMax,
  straight-through Gumbel, ...) at the free positions, and the fixed tokens elsewhere.
  ``J / kappa`` is the negative ELBO of the model ``x ~ OneHotCategorical(l)``,
  ``factor(r(x) / kappa)`` under the guide ``x ~ Estimator(phi)`` with the analytic KL
  (``TraceMeanField_ELBO``): guidance is SVI on a tilted posterior, through the same classes
  and ``kl_divergence`` registrations as :func:`pyro_ext.relax.relax`.

Mirrors ``numpyro_ext/diffusion.py`` name for name (there: explicit PRNG keys, an
``optax`` inner loop under ``jit``).

>>> def denoiser(x_t, t):  # a toy: prefers token 1 everywhere
...     return torch.tensor([0.0, 2.0, 0.0]).expand(*x_t.shape, 3)
>>> x = sample(denoiser, torch.full((4, 6), 3), n_classes=3, n_steps=3)
>>> x.shape, bool((x == 1).all())
(torch.Size([4, 6]), True)

References:
    L. Zheng, J. Yuan, L. Yu, L. Kong. A Reparameterized Discrete Diffusion Model for Text
    Generation. 2023, arXiv 2302.05737.
    S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
    Reparameterization with Denoising Diffusion models. 2026, arXiv 2601.00781.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch.distributions import kl_divergence

from relaxed_dists.checks import check_event_size, out_of_range
from relaxed_dists.diffusion import (
    DECODINGS,
    LOSS_WEIGHTS,
    NOISES,
    ROUTINGS,
    SCHEDULES,
    check_choice,
    check_guidance_args,
    check_n_diffusion_steps,
    check_normalize,
    check_routing_noise,
    guidance_hyper,
    multinomial_rates,
    noisy_count,
    step_times,
    unmask_probability,
)

from . import kl as _kl  # noqa: F401  (registers the estimator classes' KL)
from ._ops import sample_gumbel
from .distributions import OneHotCategorical
from .relax import ONE_HOT_CLASSES

__all__ = ["MaskedDiffusion", "MultinomialDiffusion", "Guidance", "tilt", "sample", "ancestral_sample"]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_tokens(name: str, x: torch.Tensor, high: int) -> None:
    """Integer tokens in ``[0, high]``; the message names the argument and the range."""
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(out_of_range(f"{name}.dtype", x.dtype, "an integer dtype (token ids)"))
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > high):
        raise ValueError(out_of_range(name, f"values in [{int(x.min())}, {int(x.max())}]", f"token ids in [0, {high}]"))


class MaskedDiffusion:
    r"""Absorbing-state (masked) discrete diffusion over ``n_classes`` tokens, RDM style.

    The mask token is ``mask_id == n_classes``. At time ``t`` each free (non-pinned) token of
    ``x0`` is masked independently with probability ``t``; RDM's training loss is the
    cross-entropy of the clean tokens at the masked positions, weighted by ``lambda(t)``
    (``weight``: ``"linear"`` ``1 - t``, RDM's default; ``"reciprocal"`` ``1 / t``, the ELBO
    weight of this schedule; ``"none"``), per free position and averaged over sequences:

    .. math:: \mathcal{L} = \mathbb{E}_{t \sim U(0, 1],\, x_t \sim q(\cdot \mid x_0)}
              \Big[\frac{\lambda(t)}{n_\text{free}} \sum_{n:\, x_{t,n} = \text{mask}}
              -\log p_\theta(x_{0,n} \mid x_t, t)\Big]

    Shapes:
        ``x0``: ``batch_shape + (L,)`` integer tokens in ``[0, n_classes)``; ``t``:
        ``batch_shape``; ``pinned``: ``batch_shape + (L,)`` booleans (never masked, not in
        the loss); the denoiser returns ``batch_shape + (L, n_classes)`` logits.

    >>> diffusion = MaskedDiffusion(4)
    >>> x0 = torch.randint(0, 4, (2, 5))
    >>> diffusion.q_sample(x0, torch.ones(2)).tolist()  # t = 1: everything masked
    [[4, 4, 4, 4, 4], [4, 4, 4, 4, 4]]
    >>> diffusion.loss(lambda x_t, t: torch.zeros(*x_t.shape, 4), x0).shape
    torch.Size([])
    """

    noise = "absorbing"

    def __init__(self, n_classes: int, *, weight: str = "linear") -> None:
        check_event_size(int(n_classes), "n_classes")
        self.n_classes = int(n_classes)
        self.mask_id = self.n_classes
        self.weight = check_choice("weight", weight, LOSS_WEIGHTS)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """``lambda(t)`` (mirrors :func:`relaxed_dists.diffusion.loss_weight`)."""
        if self.weight == "linear":
            return 1.0 - t
        if self.weight == "reciprocal":
            return 1.0 / t
        return torch.ones_like(t)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, *, pinned=None, generator=None) -> torch.Tensor:
        """``x_t``: each free token of ``x0`` replaced by ``mask_id`` with probability ``t``."""
        u = torch.rand(x0.shape, device=x0.device, generator=generator)
        masked = u < torch.as_tensor(t, device=x0.device).unsqueeze(-1)
        if pinned is not None:
            masked = masked & ~pinned
        return torch.where(masked, self.mask_id, x0)

    def loss(self, denoiser: Denoiser, x0: torch.Tensor, *, t=None, pinned=None, generator=None) -> torch.Tensor:
        """RDM's reweighted cross-entropy (a scalar) on the noisy positions; ``t ~ U(0, 1]`` per
        sequence unless given."""
        _check_tokens("x0", x0, self.n_classes - 1)
        if t is None:
            t = 1.0 - torch.rand(x0.shape[:-1], device=x0.device, generator=generator)
        x_t, noisy = self._noised(x0, t, pinned, generator)
        log_probs = torch.log_softmax(denoiser(x_t, t), dim=-1)
        nll = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        n_free = x0.shape[-1] if pinned is None else (~pinned).sum(-1).clamp(min=1)
        per_sequence = torch.where(noisy, nll, 0.0).sum(-1) / n_free
        return (self.loss_weight(t) * per_sequence).mean()

    def _noised(self, x0, t, pinned, generator):
        """``(x_t, noisy)``: the forward draw and which positions it made noisy."""
        x_t = self.q_sample(x0, t, pinned=pinned, generator=generator)
        return x_t, x_t == self.mask_id


class MultinomialDiffusion(MaskedDiffusion):
    r"""Multinomial (uniform) discrete diffusion over ``n_classes`` tokens, RDM style.

    At time ``t`` each free token of ``x0`` becomes noisy independently with probability ``t``,
    and a noisy token is drawn uniformly from the ``n_classes`` tokens, so
    ``q(x_t | x_0) = Cat((1 - t) x_0 + t / K)`` (``relaxed_dists.diffusion.marginal``). There is
    no mask token: ``x_t`` does not show which tokens are noisy (a noisy token equals ``x_0``
    with probability ``1 / K``). RDM's loss is the same reweighted cross-entropy as
    :class:`MaskedDiffusion`'s, on the noisy positions, which the forward process knows:

    .. math:: \mathcal{L} = \mathbb{E}_{t,\, b,\, x_t}
              \Big[\frac{\lambda(t)}{n_\text{free}} \sum_{n:\, b_n = 1}
              -\log p_\theta(x_{0,n} \mid x_t, t)\Big],\qquad b_n \sim \mathrm{Bernoulli}(t).

    A sibling class rather than a ``noise=`` flag on :class:`MaskedDiffusion`: "masked" names
    the absorbing process, and the two differ in what ``q_sample`` can return (the noisy set).
    Sample from a model trained with it by ``sample(..., noise="multinomial")``.

    Shapes: as :class:`MaskedDiffusion`; the denoiser sees tokens in ``[0, n_classes)`` only.

    >>> diffusion = MultinomialDiffusion(4)
    >>> x0 = torch.randint(0, 4, (2, 5))
    >>> x_t, noisy = diffusion.q_sample(x0, torch.ones(2), return_noisy=True)
    >>> bool(noisy.all()), bool((x_t < 4).all())  # t = 1: every token is noise, none is a mask
    (True, True)
    """

    noise = "multinomial"

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, *, pinned=None, generator=None, return_noisy: bool = False):
        """``x_t``: each free token of ``x0`` replaced, with probability ``t``, by a uniformly drawn
        token; with ``return_noisy``, ``(x_t, noisy)``, ``noisy`` the booleans of the replaced positions."""
        u = torch.rand(x0.shape, device=x0.device, generator=generator)
        noisy = u < torch.as_tensor(t, device=x0.device).unsqueeze(-1)
        if pinned is not None:
            noisy = noisy & ~pinned
        tokens = torch.randint(0, self.n_classes, x0.shape, device=x0.device, generator=generator)
        x_t = torch.where(noisy, tokens, x0)
        return (x_t, noisy) if return_noisy else x_t

    def _noised(self, x0, t, pinned, generator):
        return self.q_sample(x0, t, pinned=pinned, generator=generator, return_noisy=True)


class Guidance:
    r"""A reward and how to tilt a denoiser's logits toward it (see the module docstring).

    Args:
        reward: ``reward(x) -> r``, differentiable in the one-hot ``x`` of shape
            ``batch_shape + (L, K)``, returning ``batch_shape`` (extra leading sample
            dimensions pass through).
        estimator: a name from :data:`relaxed_dists.registry.ESTIMATORS` other than
            ``"concrete"`` (the reward sees hard one-hots), or a distribution class (or any
            callable) taking ``logits=`` whose ``rsample`` is one-hot.
        n_opt: Adam steps per diffusion step (0: no tilt). lr: Adam's step size.
        kl_weight: ``kappa``, the weight of ``KL(Cat(phi) || Cat(l))``.
        n_samples: estimator samples per Adam step (the reward is averaged over them).
        use_prior: ``False`` tilts uniform logits instead of the denoiser's (guidance
            without the prior: the reward and the KL to uniform alone).
        normalize: divide each sequence's reward, at every Adam step, by its detached mean
            absolute value over the ``n_samples`` draws (1 where that is 0), so that
            ``kl_weight`` and ``lr`` do not depend on the reward's scale: ``r`` and ``c r``
            (any ``c > 0``) give the same updates. ``False``: the raw reward, and ``J / kappa``
            is exactly the negative ELBO of the module docstring. A Python ``bool``.
        **hyper: the estimator's hyperparameters (``n_steps``, ``t_1``, ``temperature``).

    Defaults: REDGE ``n_steps=3, t_1=0.5`` (the REDGE authors' guidance code); ``n_opt=30,
    lr=0.3, kl_weight=0.003`` with ``normalize=True``: a sweep over ``n_opt`` in {10, 30},
    ``lr`` in {0.1, 0.3}, ``kl_weight`` in {0.003, ..., 0.1} on the 4x4 Sudoku demo's
    validation puzzles picks ``n_opt=30, lr=0.3``, where every ``kl_weight`` lies within 2
    binomial SE of the best; the smallest is kept because the sweep's argmax (0.03) failed
    the check on 4x4 Latin squares from uniform logits (so that check is not fully held
    out), at reward scales 0.1x, 1x and 10x: ``benchmarks/guidance_defaults.py``,
    ``benchmarks/results/guidance_defaults.md``. The authors' own knobs (``n_opt=10, lr=0.1,
    kl_weight=1``, raw reward) give 0% valid Latin squares there.

    Example:
        A denoiser with no preference and a reward that counts token 1: guided sampling fills
        every free position with 1 and keeps the pinned tokens.

        >>> _ = torch.manual_seed(0)
        >>> uniform = lambda x_t, t: torch.zeros(*x_t.shape, 3)
        >>> guide = Guidance(lambda x: x[..., 1].sum(-1), "reinmax", n_opt=20)
        >>> sample(uniform, torch.tensor([[0, 3, 3, 3, 3, 2]]), n_classes=3, n_steps=4, guidance=guide).tolist()
        [[0, 1, 1, 1, 1, 2]]
    """

    def __init__(
        self,
        reward: Callable[[torch.Tensor], torch.Tensor],
        estimator="redge",
        *,
        n_opt: int = 30,
        lr: float = 0.3,
        kl_weight: float = 0.003,
        n_samples: int = 1,
        use_prior: bool = True,
        normalize: bool = True,
        **hyper,
    ) -> None:
        check_guidance_args(n_opt, lr, kl_weight, n_samples)
        normalize = check_normalize(normalize)
        if isinstance(estimator, str):
            hyper = guidance_hyper(estimator, hyper)
            estimator = ONE_HOT_CLASSES[estimator]
        elif not callable(estimator):
            raise TypeError(out_of_range("estimator", estimator, "an estimator name or a distribution class"))
        self.reward, self.estimator, self.hyper = reward, estimator, hyper
        self.n_opt, self.lr, self.kl_weight, self.n_samples, self.use_prior = n_opt, lr, kl_weight, n_samples, use_prior
        self.normalize = normalize

    def distribution(self, logits: torch.Tensor):
        """The guide ``q_phi``: the estimator's distribution at ``logits``."""
        return self.estimator(logits=logits, **self.hyper)

    def objective(self, phi: torch.Tensor, prior_logits: torch.Tensor, x_t=None) -> torch.Tensor:
        """``J(phi)`` per sequence (``batch_shape``): ``-E[r(x_hat)] + kl_weight * KL`` (``r``
        divided by its detached scale when ``normalize``), one draw
        of ``n_samples`` estimator samples; positions where ``x_t`` holds a token are fixed."""
        free, context = _free_and_context(x_t, phi)
        q = self.distribution(phi)
        x_hat = torch.where(free.unsqueeze(-1), q.rsample((self.n_samples,)), context)
        kl = torch.where(free, kl_divergence(q, OneHotCategorical(logits=prior_logits)), 0.0).sum(-1)
        r = self.reward(x_hat)
        r = r / _reward_scale(r.detach()) if self.normalize else r
        return -r.mean(0) + self.kl_weight * kl


def _reward_scale(r: torch.Tensor) -> torch.Tensor:
    """``batch_shape``: the mean of ``|r|`` over the sample dimension ``0``, 1 where it is 0
    (all draws scored 0: nothing to rescale)."""
    scale = r.abs().mean(0)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _free_and_context(x_t, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which positions are free (``x_t == K``, or all when ``x_t`` is None), and the one-hot of
    the fixed tokens (zeros at the free positions)."""
    k = logits.shape[-1]
    if x_t is None:
        return torch.ones(logits.shape[:-1], dtype=torch.bool, device=logits.device), torch.zeros_like(logits)
    free = x_t == k
    context = torch.nn.functional.one_hot(torch.where(free, 0, x_t), k).to(logits.dtype)
    return free, context * ~free.unsqueeze(-1)


def tilt(prior_logits: torch.Tensor, guidance: Guidance, *, x_t=None) -> torch.Tensor:
    r"""Reward-tilted logits ``phi`` (``prior_logits.shape``): ``n_opt`` Adam steps on
    :meth:`Guidance.objective` from ``phi = log_softmax(prior_logits)``, the sequences of the
    batch independently; positions fixed by ``x_t`` keep the prior logits. No gradient flows
    to ``prior_logits`` (it is detached); estimator noise comes from torch's global generator,
    as in every ``torch.distributions`` sampler.

    >>> reward = lambda x: x[..., 0].sum(-1)  # count of token 0
    >>> phi = tilt(torch.zeros(2, 5, 3), Guidance(reward, "reinmax", n_opt=20))
    >>> phi.shape, bool((phi.argmax(-1) == 0).all())
    (torch.Size([2, 5, 3]), True)
    """
    log_prior = torch.log_softmax(prior_logits.detach(), dim=-1)
    prior = log_prior if guidance.use_prior else torch.full_like(log_prior, -math.log(log_prior.shape[-1]))
    phi = prior.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([phi], lr=guidance.lr)
    with torch.enable_grad():
        for _ in range(guidance.n_opt):
            optimizer.zero_grad(set_to_none=True)
            guidance.objective(phi, prior, x_t).sum().backward()  # a sum: rows stay independent
            optimizer.step()
    free, _ = _free_and_context(x_t, prior)
    return torch.where(free.unsqueeze(-1), phi.detach(), log_prior)


def _route(x, noisy, log_probs, pinned, n_noisy_next, *, routing, routing_noise, renoise, decode, generator):
    """One route-and-denoise step: propose a token for every noisy position, then keep the
    ``n_candidates - n_noisy_next`` best-scored candidates decoded and the others noisy.
    Returns ``(tokens, noisy)``: the proposal at the decoded positions (the old token elsewhere)
    and the new noisy set; the caller writes the noise tokens there."""
    gumbel = functools.partial(sample_gumbel, dtype=log_probs.dtype, device=log_probs.device, generator=generator)
    proposal = (log_probs + gumbel(log_probs.shape) if decode == "sample" else log_probs).argmax(-1)
    proposal = torch.where(noisy, proposal, x)  # decoded tokens keep their value
    candidates = noisy | (~pinned if renoise else torch.zeros_like(noisy))
    if routing == "random":
        score = gumbel(x.shape)
    else:
        score = log_probs.gather(-1, proposal.unsqueeze(-1)).squeeze(-1)
        score = score + routing_noise * gumbel(x.shape) if routing_noise else score
    score = score.clamp(min=torch.finfo(score.dtype).min)  # a -inf candidate still ranks above non-candidates
    rank = score.masked_fill(~candidates, -math.inf).argsort(-1, descending=True).argsort(-1)
    n_decode = candidates.sum(-1, keepdim=True) - n_noisy_next.unsqueeze(-1)
    decoded = candidates & (rank < n_decode)
    return torch.where(decoded, proposal, x), candidates & ~decoded


def _noise_tokens(x, noisy, noise, n_classes, generator):
    """``x`` with its ``noisy`` positions set to noise: the mask (absorbing) or fresh uniform
    tokens (multinomial, RDM's ``w ~ q_noise`` redrawn at every step)."""
    if noise == "absorbing":
        return torch.where(noisy, n_classes, x)
    return torch.where(noisy, torch.randint(0, n_classes, x.shape, device=x.device, generator=generator), x)


def _call(denoiser, x, t, n_classes):
    """One denoiser call at time ``t`` (no grad), its shape checked, as float32/float64 logits."""
    with torch.no_grad():
        logits = denoiser(x, torch.full(x.shape[:-1], t, device=x.device))
    if logits.shape != x.shape + (n_classes,):
        raise ValueError(
            out_of_range(
                "denoiser(x_t, t).shape",
                tuple(logits.shape),
                f"x_t.shape + (n_classes,) = {tuple(x.shape) + (n_classes,)}",
            )
        )
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _noisy_count(n_free: torch.Tensor, t: float, schedule: str, length: int) -> torch.Tensor:
    """:func:`relaxed_dists.diffusion.noisy_count` (float64 NumPy) tabulated for every
    ``n_free`` in ``0 .. length`` and looked up (float32 would round ``n_free * t`` down)."""
    return torch.as_tensor(noisy_count(np.arange(length + 1), t, schedule), device=n_free.device)[n_free]


def sample(
    denoiser: Denoiser,
    x_init: torch.Tensor,
    *,
    n_classes: int,
    n_steps: int,
    noise: str = "absorbing",
    routing: str = "adaptive",
    schedule: str = "linear",
    routing_noise: float = 0.0,
    renoise: bool = False,
    decode: str = "argmax",
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    return_trace: bool = False,
):
    r"""Route-and-denoise sampling (RDM) of ``x_init``'s masked positions in ``n_steps`` denoiser calls.

    Args:
        denoiser: ``denoiser(x_t, t) -> logits`` (module docstring); called exactly once per
            step under ``torch.no_grad()``.
        x_init: ``batch_shape + (L,)`` tokens; ``n_classes`` (the mask) marks the positions to
            generate, every other position is pinned (a prompt, Sudoku clues) and never changes.
        noise: ``"absorbing"`` (noisy positions hold the mask) or ``"multinomial"`` (noisy
            positions hold uniformly drawn tokens, redrawn at every step; the sampler tracks
            which are noisy, as RDM's algorithm does, since ``x_t`` does not show it). It must be
            the noise the denoiser was trained with (:class:`MaskedDiffusion`,
            :class:`MultinomialDiffusion`).
        routing: ``"adaptive"`` (RDM: denoise the positions whose proposed token is most
            probable) or ``"random"`` (a uniformly random order, as ancestral absorbing sampling).
        schedule: ``"linear"`` or ``"cosine"``: how many positions stay noisy after each step.
        routing_noise: scale of Gumbel noise added to adaptive scores (0: deterministic top-k).
        renoise: let routing re-mask decoded (not pinned) tokens whose score is low (RDM's
            full routing); otherwise decoded tokens stay.
        decode: ``"argmax"`` or ``"sample"`` the proposal from ``softmax(logits)``.
        guidance: tilt the logits of each step toward a reward (:class:`Guidance`, :func:`tilt`);
            the denoiser call count does not change.
        generator: a ``torch.Generator`` for the routing and decoding noise. Guidance's
            estimator noise comes from torch's global generator (as every ``rsample``): seed it
            with ``torch.manual_seed`` too for a reproducible guided run.
        return_trace: also return a list with one dict per step: ``t`` (time after the step),
            ``x`` (tokens after it), ``noisy`` (``batch_shape + (L,)``, the noisy set after it) and
            ``n_noisy`` (``batch_shape`` noisy free positions).

    Returns:
        ``batch_shape + (L,)`` tokens without any mask (and the trace if asked).

    Example:
        One denoiser call per step; the first and last tokens are pinned (3 is the mask), and
        the trace shows how many free positions stay masked after each step.

        >>> calls = []
        >>> def denoiser(x_t, t):
        ...     calls.append(t)
        ...     return torch.tensor([0.0, 2.0, 0.0]).expand(*x_t.shape, 3)
        >>> x, trace = sample(denoiser, torch.tensor([[0, 3, 3, 3, 3, 2]]), n_classes=3, n_steps=4, return_trace=True)
        >>> x.tolist(), len(calls), [int(step["n_noisy"]) for step in trace]
        ([[0, 1, 1, 1, 1, 2]], 4, [3, 2, 1, 0])
    """
    n_steps = check_n_diffusion_steps(n_steps)
    check_choice("noise", noise, NOISES)
    for name, value, allowed in (
        ("routing", routing, ROUTINGS),
        ("schedule", schedule, SCHEDULES),
        ("decode", decode, DECODINGS),
    ):
        check_choice(name, value, allowed)
    check_routing_noise(routing_noise)
    _check_tokens("x_init", x_init, n_classes)
    pinned = x_init != n_classes
    n_free = (~pinned).sum(-1)
    route = functools.partial(
        _route, routing=routing, routing_noise=routing_noise, renoise=renoise, decode=decode, generator=generator
    )
    noisy = ~pinned
    x, trace, times = _noise_tokens(x_init, noisy, noise, n_classes, generator), [], step_times(n_steps)
    for t, t_next in zip(times[:-1], times[1:]):
        logits = _call(denoiser, x, t, n_classes)
        if guidance is not None:
            logits = tilt(logits, guidance, x_t=torch.where(noisy, n_classes, x))
        n_noisy_next = _noisy_count(n_free, t_next, schedule, x.shape[-1])
        x, noisy = route(x, noisy, torch.log_softmax(logits, dim=-1), pinned, n_noisy_next)
        x = _noise_tokens(x, noisy, noise, n_classes, generator)
        if return_trace:
            trace.append({"t": t_next, "x": x.clone(), "noisy": noisy.clone(), "n_noisy": noisy.sum(-1)})
    return (x, trace) if return_trace else x


def ancestral_sample(
    denoiser: Denoiser,
    x_init: torch.Tensor,
    *,
    n_classes: int,
    n_steps: int,
    noise: str = "absorbing",
    decode: str = "sample",
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    return_trace: bool = False,
):
    r"""Vanilla (D3PM-style) ancestral sampling, the baseline RDM's sampler is compared with, in
    ``n_steps`` denoiser calls on the grid ``t_s = s / n_steps``.

    Each step draws ``x_s ~ p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) p_theta(x_0 | x_t)``
    (:func:`relaxed_dists.diffusion.posterior`): with absorbing noise a masked position is
    unmasked with probability ``(t - s) / t``, to a token of ``p_theta``; with multinomial noise
    every free position is redrawn from Hoogeboom et al.'s posterior, decoded or not (there is
    no routing: which positions are clean is never decided). The last step (``s = 0``) leaves no
    mask.

    Args:
        denoiser, x_init, n_classes, noise, guidance, generator: as :func:`sample` (guidance
            tilts the logits at the positions still masked (absorbing) or at every free
            position (multinomial)).
        decode: ``"sample"`` (ancestral sampling proper) or ``"argmax"``: the unmasked token is
            ``p_theta``'s mode (absorbing) / ``x_s`` is the posterior's mode (multinomial).
        return_trace: one dict per step: ``t``, ``x`` and, for absorbing noise, ``n_noisy``.

    Returns:
        ``batch_shape + (L,)`` tokens without any mask (and the trace if asked).

    Example:
        >>> uniform = lambda x_t, t: torch.zeros(*x_t.shape, 3)
        >>> x = ancestral_sample(uniform, torch.full((2, 5), 3), n_classes=3, n_steps=4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, bool((x < 3).all())  # no mask left after the last step
        (torch.Size([2, 5]), True)
    """
    n_steps = check_n_diffusion_steps(n_steps)
    check_choice("noise", noise, NOISES)
    check_choice("decode", decode, DECODINGS)
    _check_tokens("x_init", x_init, n_classes)
    pinned = x_init != n_classes
    x, trace, times = _noise_tokens(x_init, ~pinned, noise, n_classes, generator), [], step_times(n_steps)
    gumbel = functools.partial(sample_gumbel, generator=generator)
    for t, s in zip(times[:-1], times[1:]):
        logits = _call(denoiser, x, t, n_classes)
        free = (x == n_classes) if noise == "absorbing" else ~pinned
        if guidance is not None:
            logits = tilt(logits, guidance, x_t=torch.where(free, n_classes, x))
        log_p = torch.log_softmax(logits, dim=-1)
        if noise == "absorbing":
            token = (
                log_p + gumbel(log_p.shape, dtype=log_p.dtype, device=log_p.device) if decode == "sample" else log_p
            ).argmax(-1)
            move = torch.rand(x.shape, device=x.device, generator=generator) < unmask_probability(t, s)
            x = torch.where(free & move, token, x)
        else:
            a_ts, a_s = multinomial_rates(t, s)
            left = a_ts * torch.nn.functional.one_hot(x, n_classes).to(log_p.dtype) + (1.0 - a_ts) / n_classes
            log_post = torch.log(left) + torch.log(a_s * log_p.exp() + (1.0 - a_s) / n_classes)
            noise_g = gumbel(log_post.shape, dtype=log_post.dtype, device=log_post.device)
            x = torch.where(pinned, x, (log_post + noise_g if decode == "sample" else log_post).argmax(-1))
        if return_trace:
            trace.append(
                {"t": s, "x": x.clone(), **({"n_noisy": (x == n_classes).sum(-1)} if noise == "absorbing" else {})}
            )
    return (x, trace) if return_trace else x
