r"""Pure estimator kernels (torch): straight-through, Gumbel-Softmax ST, ReinMax, REDGE,
REDGE-cov and REINDGE, in one-hot form and (``binary_*``) for Bernoulli variables.

Every kernel takes its noise as an argument and returns ``(hard, soft)``: ``hard`` is an
exact one-hot in the forward pass (every entry 0.0 or 1.0) and carries the estimator's
surrogate gradient; ``soft`` is the relaxed point the estimator differentiates.
``logits`` has shape ``batch + (K,)``; ``gumbels`` and ``eps`` have ``logits.shape``;
``temperature`` and ``t_1`` are Python floats or tensors broadcastable to ``batch``
(applied with ``[..., None]``, never along the event dimension).

The binary kernels (``binary_straight_through``, ``binary_reinmax``, ``binary_redge``,
``binary_redge_cov``, ``binary_reindge``) are the K = 2 case written for one coordinate:
``logits`` of any shape hold ``l`` of the one-hot logits ``(0, l)``, ``hard`` is exactly 0. or
1. (the class-1 coordinate) and ``soft`` is the class-1 probability. Their noise is one number
per element: the logistic ``L = G_1 - G_0`` of the final draw and, for the REDGE family, the
start ``eps = eps_1 - eps_0 ~ N(0, 2)`` of the chain, which runs on the difference
``d = x_1 - x_0`` of the two coordinates (the DDIM update is linear per coordinate, and the
denoiser sees the state only through ``d``). Hyperparameters broadcast against ``logits``
directly (no event dimension).

The kernels mirror ``relaxed_dists.reference`` (the float64 oracle) name for name and
``numpyro_ext.estimators`` line for line. This module imports torch, ``relaxed_dists`` and
``._ops`` only (never Pyro), so the benchmark can run it on a machine without Pyro.
Nothing here synchronises with the device: loops run over the Python-int ``n_steps`` and
branches look at types and ``requires_grad``, never at tensor values, so the kernels
trace under ``torch.compile``.

References
----------
- Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through
  Stochastic Neurons. 2013, arXiv 1308.3432.
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017,
  arXiv 1611.01144.
- L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and Backpropagation:
  Straight-Through and Beyond (ReinMax). NeurIPS 2023, arXiv 2304.08612.
- S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
  Reparameterization with Denoising Diffusion models (REDGE). 2026, arXiv 2601.00781.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from relaxed_dists.clamping import ALPHA_MIN, COV_MIN_VARIANCE
from relaxed_dists.schedules import redge_fractions

from . import _ops
from ._ops import one_hot_argmax

__all__ = [
    "straight_through",
    "gumbel_softmax",
    "reinmax",
    "redge",
    "redge_cov",
    "reindge",
    "binary_straight_through",
    "binary_reinmax",
    "binary_redge",
    "binary_redge_cov",
    "binary_reindge",
]

Hyper = float | torch.Tensor


def _hyper(value: Hyper, logits: torch.Tensor) -> Hyper:
    """A float stays a float; a ``batch``-shaped tensor moves to ``logits``' dtype and device and gets ``[..., None]``."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=logits.dtype, device=logits.device)[..., None]
    return value


def _requires_grad(value: Hyper) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


def _save_hyper(ctx, value: Hyper) -> torch.Tensor | None:
    """Keep a float on ``ctx``; hand a tensor back to ``save_for_backward``."""
    ctx.hyper = None if isinstance(value, torch.Tensor) else value
    return value if isinstance(value, torch.Tensor) else None


def _softmax_vjp(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Vector-Jacobian product of ``p = softmax(z)``: ``p * (g - <p, g>)``, as one fused kernel
    (the ATen op autograd itself uses for softmax, instead of four elementwise passes)."""
    shape = torch.broadcast_shapes(p.shape, g.shape)  # noise may carry leading sample dimensions
    return torch._softmax_backward_data(g.expand(shape), p.expand(shape), -1, p.dtype)


def _axpy(y: torch.Tensor, a: Hyper, x: torch.Tensor) -> torch.Tensor:
    """``y + a * x`` in one kernel, for a float or a broadcastable tensor ``a``."""
    return torch.addcmul(y, a, x) if isinstance(a, torch.Tensor) else torch.add(y, x, alpha=a)


def _axpy_(y: torch.Tensor, a: Hyper, x: torch.Tensor) -> torch.Tensor:
    """In place, on a ``y`` the caller owns: ``y += a * x``."""
    return y.addcmul_(a, x) if isinstance(a, torch.Tensor) else y.add_(x, alpha=a)


def _hard_soft(z: torch.Tensor, gumbels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``soft = softmax(z)`` and ``hard ~ Cat(soft)`` by Gumbel-max on ``log_softmax(z)`` (never ``log(softmax)``)."""
    return one_hot_argmax(torch.log_softmax(z.detach(), dim=-1) + gumbels), torch.softmax(z, dim=-1)


# --- straight-through family --------------------------------------------------------


def straight_through(logits: torch.Tensor, gumbels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Straight-through estimator (Bengio et al. 2013).

    Forward: ``hard ~ Cat(softmax(logits))`` by Gumbel-max, ``soft = softmax(logits)``.
    Backward: the softmax VJP, as if ``hard`` were ``soft``:

    .. math:: \nabla_\ell = p \odot (g - \langle p, g\rangle), \qquad p = \mathrm{softmax}(\ell).

    >>> hard, soft = straight_through(torch.zeros(3, 4), torch.zeros(3, 4))
    >>> hard.shape, soft.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """
    hard, soft = _hard_soft(logits, gumbels)
    return _ops.straight_through(hard, soft), soft


def gumbel_softmax(
    logits: torch.Tensor, temperature: Hyper, gumbels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gumbel-Softmax straight-through (Jang et al. 2017).

    Forward: ``soft = softmax((logits + G) / tau)`` (a Concrete sample) and
    ``hard = one_hot(argmax(logits + G))``, an exact draw from ``Cat(softmax(logits))``.
    Backward: the Concrete sample's gradient, to the logits and (if a tensor) to ``tau``:

    .. math:: \nabla_\ell = \frac{1}{\tau}\, y \odot (g - \langle y, g\rangle), \qquad
              \nabla_\tau = -\frac{1}{\tau}\, \langle \nabla_\ell, \ell + G\rangle .

    >>> hard, soft = gumbel_softmax(torch.zeros(3, 4), 0.5, torch.zeros(3, 4))
    >>> hard.shape, soft.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """
    scores = logits + gumbels
    hard = one_hot_argmax(scores.detach())
    soft = torch.softmax(scores / _hyper(temperature, logits), dim=-1)
    del scores  # freed before the straight-through sum: one logits-sized buffer fewer at the peak
    return _ops.straight_through(hard, soft), soft


class _ReinMax(torch.autograd.Function):
    r"""ReinMax (Liu et al. 2023, Algorithm 2): forward ``(hard, pi_0)``, ``hard ~ Cat(pi_0)``.

    With ``J_p^T g = p * (g - <p, g>)``, upstream ``g`` on ``hard`` and ``g_soft`` on ``pi_0``:

    .. math::
        \pi_0 = \mathrm{softmax}(\ell),\quad \pi_1 = \tfrac12(\mathrm{softmax}(\ell/\tau) + \text{hard}),\quad
        \nabla_\ell = \mathrm{centre}\big(2 J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g\big) + J_{\pi_0}^\top g_{\text{soft}} .

    ``tau`` enters the backward only; it receives no gradient.
    """

    @staticmethod
    def forward(ctx, logits, temperature, gumbels):
        log_probs = torch.log_softmax(logits, dim=-1)
        hard = one_hot_argmax(log_probs + gumbels)
        soft = log_probs.exp()
        ctx.save_for_backward(logits, hard, soft, _save_hyper(ctx, temperature))
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        return hard, soft

    @staticmethod
    @once_differentiable
    def backward(ctx, g, g_soft):
        logits, hard, pi_0, temperature = ctx.saved_tensors
        grad = None if g_soft is None else _softmax_vjp(pi_0, g_soft)
        if g is not None:
            temperature = ctx.hyper if temperature is None else temperature
            pi_1 = 0.5 * (torch.softmax(logits / temperature, dim=-1) + hard)
            reinmax = 2.0 * _softmax_vjp(pi_1, g) - 0.5 * _softmax_vjp(pi_0, g)
            reinmax = reinmax - reinmax.mean(dim=-1, keepdim=True)
            grad = reinmax if grad is None else grad + reinmax
        return grad, None, None


def reinmax(logits: torch.Tensor, temperature: Hyper, gumbels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ReinMax (Liu et al. 2023): second-order (Heun) straight-through.

    Forward: ``hard ~ Cat(softmax(logits))`` by Gumbel-max, ``soft = softmax(logits)``.
    Backward on ``hard`` (``soft`` keeps its plain softmax gradient), with
    ``J_p^T g = p * (g - <p, g>)``:

    .. math::
        \nabla_\ell = 2 J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g,\quad
        \pi_0 = \mathrm{softmax}(\ell),\quad \pi_1 = \tfrac12(\mathrm{softmax}(\ell/\tau) + \text{hard}),

    centred over the event dimension. ``temperature`` enters the backward only, so no
    gradient flows to it (a tensor temperature that requires grad gets none).

    >>> hard, soft = reinmax(torch.zeros(3, 4), 1.0, torch.zeros(3, 4))
    >>> hard.shape, soft.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """
    logits = logits.expand(torch.broadcast_shapes(logits.shape, gumbels.shape))  # soft, hard: one shape
    return _ReinMax.apply(logits, _hyper(temperature, logits), gumbels)


# --- REDGE (Gourevitch et al. 2026) --------------------------------------------------


def _redge_schedule(n_steps: int, t_1: Hyper) -> tuple[list, list]:
    """``(alphas, sigmas)``, index 0 clean, from ``redge_fractions``: floats for a float ``t_1``, else tensors.

    ``alpha_k = (1 - t_1)(1 - f_k) + ALPHA_MIN f_k`` is differentiable in a tensor ``t_1``.
    """
    alphas = [1.0] + [(1.0 - t_1) * (1.0 - f) + ALPHA_MIN * f for f in redge_fractions(n_steps)]
    return alphas, [1.0 - a for a in alphas]


def _redge_logits(logits, x, alpha, sigma):
    """Pre-activation of the REDGE denoiser (eq. 7): ``x0_hat = softmax(logits + alpha x / sigma^2)``."""
    return _axpy(logits, alpha / sigma**2, x)


def _redge_cov_logits(logits, x, alpha, sigma, p, var):
    """Pre-activation of the REDGE-cov denoiser: ``logits + (alpha x - alpha sigma p - alpha^2 / 2) / (var sigma^2)``."""
    return logits + (alpha * x - alpha * sigma * p - alpha**2 / 2.0) / (var * sigma**2)


def _ddim_coefficients(alphas: list, sigmas: list, t: int) -> tuple[Hyper, Hyper]:
    """The DDIM bridge from ``t`` to ``s = t - 1``, ``alpha_s x0_hat + sigma_s (x - alpha_t x0_hat) / sigma_t``,
    as ``c_x0 * x0_hat + c_x * x``: two fused passes instead of six, shared with the reverse pass."""
    c_x = sigmas[t - 1] / sigmas[t]
    return alphas[t - 1] - c_x * alphas[t], c_x


def _redge_chain(denoiser_logits, logits, x, alphas, sigmas, *args, x0_hats=None):
    """DDIM from the noisiest grid point down to index 1; returns the state ``x_1`` there
    (the input of the last denoiser call). Appends each ``x0_hat`` to ``x0_hats`` if given."""
    for t in range(len(alphas) - 1, 1, -1):
        x0_hat = torch.softmax(denoiser_logits(logits, x, alphas[t], sigmas[t], *args), dim=-1)
        if x0_hats is not None:
            x0_hats.append(x0_hat)
        c_x0, c_x = _ddim_coefficients(alphas, sigmas, t)
        x = _axpy_(c_x * x, c_x0, x0_hat)  # in place on the fresh c_x * x, never on eps
    return x


class _REDGE(torch.autograd.Function):
    r"""REDGE's chain with a hand-written, recomputing backward: forward ``(hard, soft)``.

    The forward runs the chain with no graph and saves only ``logits``, ``eps``, ``soft``
    and ``t_1`` (the schedule is rebuilt from ``t_1`` and ``n_steps``). The backward
    recomputes the chain once, keeping the ``n_steps - 2`` intermediate ``x0_hat`` (the
    last one is ``soft``), then runs reverse mode by hand (``reference._redge_backprop``).
    With ``z_t = logits + k_t x_t``, ``k_t = alpha_t / sigma_t^2``, ``x0_hat_t = softmax(z_t)``,
    ``x_{t-1} = c_{x0,t} x0_hat_t + c_{x,t} x_t``, ``J_p^T g = p * (g - <p, g>)`` and
    ``g`` the gradient on ``soft``, for ``t = 1, 2, ..., n_steps - 1``:

    .. math::
        \bar z_1 = J_{\hat x_{0,1}}^\top g,\quad
        \bar z_t = J_{\hat x_{0,t}}^\top \big(c_{x0,t}\, \bar x_{t-1}\big),\quad
        \bar x_t = c_{x,t}\, \bar x_{t-1} + k_t \bar z_t \ (\bar x_0 := 0),\quad
        \nabla_\ell = \textstyle\sum_t \bar z_t .

    Recompute strategy: between forward and backward, while the rest of a model runs,
    this holds two logits-sized tensors (``eps``, ``soft``) where Gumbel-Softmax-ST holds
    one and plain autograd about one to three per denoiser call. The backward's transient
    peak adds ``n_steps - 2`` logits-sized tensors, and the whole costs
    ``2 (n_steps - 1) - 1`` softmaxes (forward plus one recompute). Keeping only the running
    state would make the backward O(1) in memory but O(n_steps^2) in denoiser calls; we
    chose linear compute. ``eps``, ``gumbels`` and ``t_1`` get no gradient here: the
    kernels route a ``t_1`` that requires grad to plain autograd.
    """

    @staticmethod
    def forward(ctx, logits, t_1, eps, gumbels, n_steps):
        alphas, sigmas = _redge_schedule(n_steps, t_1)
        x = _redge_chain(_redge_logits, logits, eps, alphas, sigmas)
        hard, soft = _hard_soft(_redge_logits(logits, x, alphas[1], sigmas[1]), gumbels)
        ctx.mark_non_differentiable(hard)
        ctx.set_materialize_grads(False)  # no zeros materialised for hard's gradient
        ctx.save_for_backward(logits, eps, soft, _save_hyper(ctx, t_1))
        ctx.n_steps = n_steps
        return hard, soft

    @staticmethod
    @once_differentiable
    def backward(ctx, _, g):
        if g is None:
            return None, None, None, None, None
        logits, eps, soft, t_1 = ctx.saved_tensors
        alphas, sigmas = _redge_schedule(ctx.n_steps, ctx.hyper if t_1 is None else t_1)
        x0_hats: list[torch.Tensor] = []
        _redge_chain(_redge_logits, logits, eps, alphas, sigmas, x0_hats=x0_hats)
        x0_hats.append(soft)
        grad_logits = _softmax_vjp(x0_hats.pop(), g)  # t = 1, the last denoiser call
        g_x = alphas[1] / sigmas[1] ** 2 * grad_logits
        for t in range(2, ctx.n_steps):  # x_{t-1} = c_x0 * x0_hat + c_x * x
            c_x0, c_x = _ddim_coefficients(alphas, sigmas, t)
            vjp = _softmax_vjp(x0_hats.pop(), g_x)  # d_z = c_x0 * vjp, by linearity: one buffer fewer
            grad_logits = _axpy_(grad_logits, c_x0, vjp)
            g_x = _axpy_(g_x.mul_(c_x), c_x0 * alphas[t] / sigmas[t] ** 2, vjp)  # now w.r.t. this step's state
        return grad_logits, None, None, None, None


def _redge_hard_soft(logits, n_steps, t_1, eps, gumbels):
    """REDGE's ``(hard, soft)``: through ``_REDGE``, or plain autograd when a tensor ``t_1`` requires grad."""
    t_1 = _hyper(t_1, logits)
    if not _requires_grad(t_1):
        return _REDGE.apply(logits, t_1, eps, gumbels, n_steps)
    alphas, sigmas = _redge_schedule(n_steps, t_1)
    x = _redge_chain(_redge_logits, logits, eps, alphas, sigmas)
    return _hard_soft(_redge_logits(logits, x, alphas[1], sigmas[1]), gumbels)


def redge(
    logits: torch.Tensor, n_steps: int, t_1: Hyper, eps: torch.Tensor, gumbels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""REDGE (Gourevitch et al. 2026): a categorical sample from a few DDIM denoising steps.

    On the grid ``alphas = [1, linspace(1 - t_1, 1e-4, n_steps - 1)]``, ``sigmas = 1 - alphas``,
    start at ``x = eps`` at the noisiest point and for ``t`` from the noisiest down to 1:

    .. math::
        \hat x_0 = \mathrm{softmax}\Big(\ell + \frac{\alpha_t x}{\sigma_t^2}\Big),\qquad
        x \leftarrow \alpha_{t-1} \hat x_0 + \sigma_{t-1} \frac{x - \alpha_t \hat x_0}{\sigma_t}\ (t > 1).

    Forward: ``soft`` is the last ``x0_hat`` (at ``alpha = 1 - t_1``), ``hard ~ Cat(soft)`` by
    Gumbel-max on ``log_softmax`` of the last pre-activation; the output is
    ``hard + (soft - soft.detach())``, exactly ``hard``. Backward: the exact gradient of
    ``soft`` through the whole chain (``n_steps - 1`` denoiser calls), by ``_REDGE``'s
    hand-written recomputing backward (its docstring gives the formula and the memory
    trade-off). A tensor ``t_1`` that requires grad falls back to plain autograd through
    the chain, which also gives ``d soft / d t_1``. ``t_1 = 1`` with ``n_steps = 2`` is
    straight-through.

    >>> hard, soft = redge(torch.zeros(3, 4), 5, 0.5, torch.randn(3, 4), torch.zeros(3, 4))
    >>> hard.shape, soft.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """
    hard, soft = _redge_hard_soft(logits, n_steps, t_1, eps, gumbels)
    return _ops.straight_through(hard, soft), soft


def _cov_variance(logits):
    """``p = softmax(logits)`` and REDGE-cov's per-class variance ``max(p (1 - p), COV_MIN_VARIANCE)``."""
    p = torch.softmax(logits, dim=-1)
    return p, (p * (1.0 - p)).clamp(min=COV_MIN_VARIANCE)


def redge_cov(
    logits: torch.Tensor, n_steps: int, t_1: Hyper, eps: torch.Tensor, gumbels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""REDGE-cov: REDGE with a per-class Gaussian likelihood of variance ``max(p (1 - p), 0.1)``.

    Start at ``x = p + sqrt(var) eps`` (``p = softmax(logits)``) and run the DDIM chain with

    .. math:: \hat x_0 = \mathrm{softmax}\Big(\ell + \frac{\alpha_t x - \alpha_t \sigma_t p - \alpha_t^2/2}{v\, \sigma_t^2}\Big).

    Forward: ``soft`` is the last ``x0_hat``, ``hard ~ Cat(soft)``, output
    ``hard + (soft - soft.detach())``. Backward: plain autograd (about three saved
    logits-sized tensors per denoiser call) through the chain, ``p``, ``var`` and the
    start point, all of which depend on the logits, and ``t_1`` if it is a tensor.

    >>> hard, soft = redge_cov(torch.zeros(3, 4), 5, 0.5, torch.randn(3, 4), torch.zeros(3, 4))
    >>> hard.shape, soft.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """
    p, var = _cov_variance(logits)
    x = p + var.sqrt() * eps
    alphas, sigmas = _redge_schedule(n_steps, _hyper(t_1, logits))
    x = _redge_chain(_redge_cov_logits, logits, x, alphas, sigmas, p, var)
    hard, soft = _hard_soft(_redge_cov_logits(logits, x, alphas[1], sigmas[1], p, var), gumbels)
    return _ops.straight_through(hard, soft), soft


class _REINDGECorrection(torch.autograd.Function):
    r"""Exact zeros forward; backward turns REDGE's gradient into REINDGE's. For upstream ``g``:

    .. math:: \nabla_\ell = \tfrac12\big(\langle g, D\rangle D - J_{\hat x_0}^\top g\big),\qquad
              D = \text{hard} - \hat x_0,\quad J_p^\top g = p \odot (g - \langle p, g\rangle),

    that is, minus the last denoiser's direct logits path ``J^T g`` (which REDGE's
    gradient contains) plus the ReinMax-style ``(J^T g + <g, D> D) / 2``. Nothing flows to
    ``hard`` or ``x0_hat``.
    """

    @staticmethod
    def forward(ctx, logits, hard, x0_hat):
        ctx.save_for_backward(hard, x0_hat)
        return torch.zeros_like(hard)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        hard, x0_hat = ctx.saved_tensors
        d = hard - x0_hat
        return 0.5 * ((g * d).sum(dim=-1, keepdim=True) * d - _softmax_vjp(x0_hat, g)), None, None


def reindge(
    logits: torch.Tensor, n_steps: int, t_1: Hyper, eps: torch.Tensor, gumbels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""REINDGE (Gourevitch et al. 2026): REDGE's forward with a ReinMax-style last step.

    Forward: exactly :func:`redge`'s ``(hard, soft)``. Backward on ``hard``: REDGE's chain
    gradient flowing only through the last step's state ``x_1`` (the last denoiser's
    direct logits path cut), plus a correction; with ``J^T g = softmax_vjp(x0_hat, g)``:

    .. math:: \nabla_\ell = \nabla^{\text{chain}, x_1}_\ell + \tfrac12\big(J^\top g + \langle g, D\rangle D\big),
              \qquad D = \text{hard} - \hat x_0 .

    Computed as REDGE's full gradient (``_REDGE``, one recomputing backward) plus
    ``_REINDGECorrection``, an ``autograd.Function`` whose forward is exact zeros added to
    the straight-through output and whose backward is ``(<g, D> D - J^T g) / 2``. ``soft``
    carries REDGE's gradient. A tensor ``t_1`` that requires grad takes plain autograd
    through the chain (the correction has no ``t_1`` path). With ``t_1 = 1`` and
    ``n_steps = 2`` this is ReinMax at ``tau = 1``.

    >>> hard, soft = reindge(torch.zeros(3, 4), 5, 0.5, torch.randn(3, 4), torch.zeros(3, 4))
    >>> hard.shape, soft.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """
    hard, soft = _redge_hard_soft(logits, n_steps, t_1, eps, gumbels)
    correction = _REINDGECorrection.apply(logits, hard, soft.detach())
    return _ops.straight_through(hard, soft) + correction, soft


# --- binary kernels: the K = 2 case on one coordinate -------------------------------------
#
# With one-hot logits (0, l), softmax is (1 - p, p), p = sigmoid(l), and a one-hot kernel's
# class-1 output is the binary kernel's output. The Gumbel-max draw argmax(log_softmax(z) + G)
# picks class 1 iff u + L > 0, with u = z_1 - z_0 (the logit of x0_hat) and L = G_1 - G_0
# standard logistic; ties go to class 0, as argmax does. A one-hot VJP with upstream (0, g) has
# class-1 coordinate p (1 - p) g, and that coordinate is the derivative in l.


def _binary_hyper(value: Hyper, logits: torch.Tensor) -> Hyper:
    """A float stays a float; a tensor moves to ``logits``' dtype and device (it broadcasts against ``logits``)."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=logits.dtype, device=logits.device)
    return value


def _binary_hard(u: torch.Tensor, logistic: torch.Tensor) -> torch.Tensor:
    """``1[u + L > 0]`` as exactly 0. or 1. in ``u``'s dtype: a draw from ``Bernoulli(sigmoid(u))``."""
    return (u.detach() + logistic > 0).to(u.dtype)


def binary_straight_through(logits: torch.Tensor, logistic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Straight-through (Bengio et al. 2013) for a Bernoulli variable: :func:`straight_through` at K = 2.

    Forward: ``hard = 1[l + L > 0] ~ Bernoulli(sigmoid(l))``, ``soft = sigmoid(l)``.
    Backward: as if ``hard`` were ``soft``, :math:`\nabla_\ell = p (1 - p)\, g`.

    >>> hard, soft = binary_straight_through(torch.zeros(3), torch.zeros(3))
    >>> hard.shape, soft.shape
    (torch.Size([3]), torch.Size([3]))
    """
    soft = torch.sigmoid(logits)
    return _ops.straight_through(_binary_hard(logits, logistic), soft), soft


class _BinaryReinMax(torch.autograd.Function):
    r"""ReinMax at K = 2: forward ``(hard, p)``, ``hard ~ Bernoulli(p)``, ``p = sigmoid(l)``.

    The one-hot VJPs with upstream ``(0, g)`` are ``(-c, c)``, already centred, so with
    ``pi_1 = (sigmoid(l / tau) + hard) / 2`` and ``g_soft`` on ``p``:

    .. math:: \nabla_\ell = \big(2 \pi_1 (1 - \pi_1) - \tfrac12 p (1 - p)\big) g + p (1 - p)\, g_{\text{soft}} .
    """

    @staticmethod
    def forward(ctx, logits, temperature, logistic):
        hard = _binary_hard(logits, logistic)
        soft = torch.sigmoid(logits)
        ctx.save_for_backward(logits, hard, soft, _save_hyper(ctx, temperature))
        ctx.set_materialize_grads(False)
        return hard, soft

    @staticmethod
    @once_differentiable
    def backward(ctx, g, g_soft):
        logits, hard, p, temperature = ctx.saved_tensors
        p_var = p * (1.0 - p)
        grad = None if g_soft is None else p_var * g_soft
        if g is not None:
            temperature = ctx.hyper if temperature is None else temperature
            pi_1 = 0.5 * (torch.sigmoid(logits / temperature) + hard)
            reinmax = (2.0 * pi_1 * (1.0 - pi_1) - 0.5 * p_var) * g
            grad = reinmax if grad is None else grad + reinmax
        return grad, None, None


def binary_reinmax(
    logits: torch.Tensor, temperature: Hyper, logistic: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ReinMax (Liu et al. 2023) for a Bernoulli variable: :func:`reinmax` at K = 2.

    Forward: as :func:`binary_straight_through`. Backward on ``hard`` (``soft`` keeps the plain
    sigmoid gradient), with ``p = sigmoid(l)`` and ``pi_1 = (sigmoid(l / tau) + hard) / 2``:

    .. math:: \nabla_\ell = \big(2 \pi_1 (1 - \pi_1) - \tfrac12 p (1 - p)\big)\, g .

    ``temperature`` enters the backward only and receives no gradient.

    >>> hard, soft = binary_reinmax(torch.zeros(3), 1.0, torch.zeros(3))
    >>> hard.shape, soft.shape
    (torch.Size([3]), torch.Size([3]))
    """
    logits = logits.expand(torch.broadcast_shapes(logits.shape, logistic.shape))
    return _BinaryReinMax.apply(logits, _binary_hyper(temperature, logits), logistic)


def _binary_redge_u(logits, d, alpha, sigma):
    """Pre-activation difference ``z_1 - z_0`` of the REDGE denoiser: ``l + alpha d / sigma^2``."""
    return _axpy(logits, alpha / sigma**2, d)


def _binary_redge_cov_u(logits, d, alpha, sigma, centre, var):
    """Of the REDGE-cov denoiser: ``l + alpha (d - sigma (2p - 1)) / (v sigma^2)``; the
    ``alpha^2 / 2`` terms of the two classes cancel, and both classes share ``v``."""
    return logits + alpha * (d - sigma * centre) / (var * sigma**2)


def _binary_chain(denoiser_u, logits, d, alphas, sigmas, *args):
    """DDIM on ``d = x_1 - x_0`` from the noisiest grid point down to index 1; returns ``d`` there.

    ``x0_hat = (1 - q, q)`` has difference ``2 q - 1``, so ``d <- c_x0 (2 q - 1) + c_x d``."""
    for t in range(len(alphas) - 1, 1, -1):
        q = torch.sigmoid(denoiser_u(logits, d, alphas[t], sigmas[t], *args))
        c_x0, c_x = _ddim_coefficients(alphas, sigmas, t)
        d = _axpy(c_x * d, c_x0, 2.0 * q - 1.0)
    return d


def _binary_redge_u_last(logits, n_steps, t_1, eps):
    """REDGE's last pre-activation difference ``u`` (``soft = sigmoid(u)``), by plain autograd."""
    alphas, sigmas = _redge_schedule(n_steps, _binary_hyper(t_1, logits))
    d = _binary_chain(_binary_redge_u, logits, eps, alphas, sigmas)
    return _binary_redge_u(logits, d, alphas[1], sigmas[1])


def binary_redge(
    logits: torch.Tensor, n_steps: int, t_1: Hyper, eps: torch.Tensor, logistic: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""REDGE (Gourevitch et al. 2026) for a Bernoulli variable: :func:`redge` at K = 2.

    On the grid of :func:`redge`, start at ``d = eps`` (``eps = eps_1 - eps_0 ~ N(0, 2)``) and
    for ``t`` from the noisiest point down to 1:

    .. math::
        q = \sigma\Big(\ell + \frac{\alpha_t d}{\sigma_t^2}\Big),\qquad
        d \leftarrow \alpha_{t-1} (2q - 1) + \sigma_{t-1} \frac{d - \alpha_t (2q - 1)}{\sigma_t}\ (t > 1).

    Forward: ``soft`` is the last ``q`` and ``hard = 1[u + L > 0] ~ Bernoulli(soft)`` with ``u``
    its pre-activation; the output is ``hard + (soft - soft.detach())``. Backward: the exact
    gradient of ``soft`` through the chain (plain autograd; a tensor ``t_1`` that requires grad
    gets its gradient too). ``t_1 = 1`` with ``n_steps = 2`` is straight-through.

    >>> hard, soft = binary_redge(torch.zeros(3), 5, 0.5, 2**0.5 * torch.randn(3), torch.zeros(3))
    >>> hard.shape, soft.shape
    (torch.Size([3]), torch.Size([3]))
    """
    u = _binary_redge_u_last(logits, n_steps, t_1, eps)
    soft = torch.sigmoid(u)
    return _ops.straight_through(_binary_hard(u, logistic), soft), soft


def binary_redge_cov(
    logits: torch.Tensor, n_steps: int, t_1: Hyper, eps: torch.Tensor, logistic: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""REDGE-cov for a Bernoulli variable: :func:`redge_cov` at K = 2.

    Both classes have the variance ``v = max(p (1 - p), 0.1)``, ``p = sigmoid(l)``; the chain
    starts at ``d = (2p - 1) + sqrt(v) eps`` and its denoiser is

    .. math:: q = \sigma\Big(\ell + \frac{\alpha_t \big(d - \sigma_t (2p - 1)\big)}{v\, \sigma_t^2}\Big).

    Forward and backward as :func:`binary_redge` (``p`` and ``v`` depend on the logits too).

    >>> hard, soft = binary_redge_cov(torch.zeros(3), 5, 0.5, 2**0.5 * torch.randn(3), torch.zeros(3))
    >>> hard.shape, soft.shape
    (torch.Size([3]), torch.Size([3]))
    """
    p = torch.sigmoid(logits)
    var = (p * (1.0 - p)).clamp(min=COV_MIN_VARIANCE)
    centre = 2.0 * p - 1.0
    d = centre + var.sqrt() * eps
    alphas, sigmas = _redge_schedule(n_steps, _binary_hyper(t_1, logits))
    d = _binary_chain(_binary_redge_cov_u, logits, d, alphas, sigmas, centre, var)
    u = _binary_redge_cov_u(logits, d, alphas[1], sigmas[1], centre, var)
    soft = torch.sigmoid(u)
    return _ops.straight_through(_binary_hard(u, logistic), soft), soft


class _BinaryREINDGECorrection(torch.autograd.Function):
    r"""Exact zeros forward; backward turns REDGE's gradient into REINDGE's (K = 2). With
    ``D = hard - q`` the one-hot correction's class-1 coordinate for upstream ``(0, g)`` is

    .. math:: \nabla_\ell = \tfrac12\big(D^2 - q (1 - q)\big)\, g .
    """

    @staticmethod
    def forward(ctx, logits, hard, q):
        ctx.save_for_backward(hard, q)
        return torch.zeros_like(hard)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        hard, q = ctx.saved_tensors
        d = hard - q
        return 0.5 * (d * d - q * (1.0 - q)) * g, None, None


def binary_reindge(
    logits: torch.Tensor, n_steps: int, t_1: Hyper, eps: torch.Tensor, logistic: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""REINDGE (Gourevitch et al. 2026) for a Bernoulli variable: :func:`reindge` at K = 2.

    Forward: exactly :func:`binary_redge`'s ``(hard, soft)``. Backward on ``hard``: REDGE's
    chain gradient with the last denoiser's direct logits path ``q (1 - q) g`` replaced by the
    ReinMax-style ``(q (1 - q) + D^2) g / 2``, ``D = hard - q``; computed as REDGE's gradient
    plus ``(D^2 - q (1 - q)) g / 2``. ``soft`` carries REDGE's gradient. With ``t_1 = 1`` and
    ``n_steps = 2`` this is :func:`binary_reinmax` at ``tau = 1``.

    >>> hard, soft = binary_reindge(torch.zeros(3), 5, 0.5, 2**0.5 * torch.randn(3), torch.zeros(3))
    >>> hard.shape, soft.shape
    (torch.Size([3]), torch.Size([3]))
    """
    hard, soft = binary_redge(logits, n_steps, t_1, eps, logistic)
    hard_value = hard.detach()
    logits = logits.expand(torch.broadcast_shapes(logits.shape, hard_value.shape))
    return hard + _BinaryREINDGECorrection.apply(logits, hard_value, soft.detach()), soft
