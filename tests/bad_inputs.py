"""The bad-input and numerics catalogue (issue 15), backend-free: plain NumPy / Python data.

Like ``tests/cases.py``, one table drives both backends: ``tests/test_bad_inputs_torch.py``
and ``tests/test_bad_inputs_jax.py`` each turn a :class:`BadCase` into tensors / arrays, run
the one scenario below with one class, collect a plain ``dict`` of observations and hand it
to :func:`judge`, which compares it with the case's expectation and returns the outcome
string that the tests assert on and ``benchmarks/bad_inputs_table.py`` tabulates in
``docs/bad_inputs.md``.

The scenario a backend runner plays for ``(case, class_name)``:

1. build ``cls(**constructor_args(case, class_name))`` with the arrays cast to
   ``case.dtype`` (``"int64"`` arrays stay integer) and ``validate_args=case.validate_args``;
   an exception at any step ends the run: ``obs["error"] = "TypeName: message"``;
2. if ``case.values`` is None: draw ``sample_shape`` (``rsample`` where the class has it) and
   score the draws; else score ``value_for(case, class_name)``;
3. differentiate ``log_prob(...).sum()`` plus, for a reparameterised draw, the sum of its
   finite entries (a fixed weighting) with respect to the probs / logits (and to
   ``temperature`` / ``t_1`` when ``case.grad_hyper``);
4. if ``case.check_stats``: read ``mean`` (and ``entropy`` where the class has one) and compare
   them with those of ``probs / sum(probs)``.

The observations (keys of ``obs``; absent means "not measured"):

- ``error``: ``"TypeName: message"`` of the exception, or None;
- ``warned``: a warning was raised (the runner records warnings, it does not fail on them);
- ``shape_ok``: draws have ``sample_shape + batch_shape + event_shape``, log_prob
  ``sample_shape + batch_shape``;
- ``nan``: names of outputs holding a NaN (``"draw"``, ``"log_prob"``, ``"grad logits"``, ...);
- ``nonfinite``: names of outputs holding +-inf where the result must be finite (an
  ``ExpRelaxedOneHotCategorical`` draw is ``-inf`` on masked classes by definition, and a
  ``RelaxedBernoulli`` draw is clipped, so a runner leaves those entries out);
- ``off_support``: number of draws off the class's support;
- ``drawn_never``: number of draws that put mass on a class the case says is never drawn;
- ``log_prob_neg_inf``: every scored entry is exactly ``-inf``;
- ``stats_ok``: mean / entropy agree with the normalised probs (None: the class has neither).

Bernoulli classes (``RelaxedBernoulli``, ``RelaxedBernoulliStraightThrough``) take one logit
(or probability) per element and no event dimension; each case says in ``binary`` what they
get (None: the case does not apply to them). Their value 1 plays the categorical's class 0
(``p = sigmoid(logit)``): a ``-inf`` logit masks the value 1, a ``+inf`` logit the value 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLASSES",
    "BINARY_CLASSES",
    "CATEGORICAL_CLASSES",
    "HYPER",
    "SUPPORT",
    "Expect",
    "BadCase",
    "CASES",
    "RESULTS",
    "constructor_args",
    "value_for",
    "never_for",
    "expectation",
    "judge",
    "category",
    "applies",
]

CLASSES = (
    "ExpRelaxedOneHotCategorical",
    "RelaxedOneHotCategorical",
    "RelaxedOneHotCategoricalStraightThrough",
    "RelaxedBernoulli",
    "RelaxedBernoulliStraightThrough",
    "OneHotCategorical",
    "StraightThrough",
    "ReinMax",
    "REDGE",
    "REDGECov",
    "REINDGE",
)
BINARY_CLASSES = ("RelaxedBernoulli", "RelaxedBernoulliStraightThrough")
CATEGORICAL_CLASSES = tuple(c for c in CLASSES if c not in BINARY_CLASSES)
TEMPERATURE_CLASSES = (
    "ExpRelaxedOneHotCategorical",
    "RelaxedOneHotCategorical",
    "RelaxedOneHotCategoricalStraightThrough",
    "RelaxedBernoulli",
    "RelaxedBernoulliStraightThrough",
    "ReinMax",
)
REDGE_CLASSES = ("REDGE", "REDGECov", "REINDGE")
#: classes whose samples are exact one-hots / 0-1 values (mean, mode, categorical log_prob)
HARD_CLASSES = (
    "RelaxedOneHotCategoricalStraightThrough",
    "RelaxedBernoulliStraightThrough",
    "OneHotCategorical",
    "StraightThrough",
    "ReinMax",
    "REDGE",
    "REDGECov",
    "REINDGE",
)

#: hyperparameters each class takes (besides probs / logits), by keyword
HYPER = {
    **{c: ("temperature",) for c in TEMPERATURE_CLASSES},
    "OneHotCategorical": (),
    "StraightThrough": (),
    **{c: ("n_steps", "t_1") for c in REDGE_CLASSES},
}

#: the support family of each class: the key into a case's ``values``
SUPPORT = {
    "ExpRelaxedOneHotCategorical": "log_simplex",
    "RelaxedOneHotCategorical": "simplex",
    "RelaxedBernoulli": "unit_interval",
    "RelaxedBernoulliStraightThrough": "boolean",
    **{c: "one_hot" for c in HARD_CLASSES if c != "RelaxedBernoulliStraightThrough"},
}

#: documented results (the ``result`` of an :class:`Expect`) and what a runner must observe
RESULTS = {
    "finite": "draws on the support; log_prob and gradients finite",
    "masked": "masked / zero-probability classes never drawn; log_prob and gradients finite",
    "normalised": "probs normalised: mean / entropy those of probs / sum(probs); all finite",
    "empty": "empty draws and log_prob of the right shapes, no error",
    "value_finite": "log_prob of the given value finite",
    "neg_inf": "log_prob = -inf: the value has probability (density) 0",
    "warn_neg_inf": "a UserWarning and log_prob = -inf (NumPyro's convention for off-support values)",
    "unchecked_nan": "validation off reads no values: NaN out, as torch.distributions / NumPyro",
    "unchecked": "validation off: the formula evaluated as given, no check (finite here)",
}


@dataclass(frozen=True)
class Expect:
    """What a ``(case, class)`` must give: a clear error or a documented result.

    error: the exception type's name (``"ValueError"``, ``"TypeError"``); its message must
        contain every string of ``names`` (the parameter, and where it fits the range), case aside.
    result: a key of :data:`RESULTS`, when no error is expected.
    upstream: a quote of the host's (torch / Pyro / NumPyro) behaviour when the outcome is the
        host's and not ours, e.g. for Pyro's own ``OneHotCategorical`` re-exported by ``pyro_ext``.
    """

    error: str | None = None
    names: tuple[str, ...] = ()
    result: str = ""
    upstream: str = ""

    def __post_init__(self):
        if (self.error is None) == (not self.result):
            raise ValueError(f"an Expect names an error or a result, not both or neither: {self}")
        if self.result and self.result not in RESULTS:
            raise ValueError(f"unknown result {self.result!r}")

    def __str__(self):
        if self.error:
            return f"{self.error}({', '.join(self.names)})"
        return self.result


def raises(error: str, *names: str, upstream: str = "") -> Expect:
    return Expect(error=error, names=names, upstream=upstream)


def gives(result: str, upstream: str = "") -> Expect:
    return Expect(result=result, upstream=upstream)


@dataclass(frozen=True, eq=False)
class BadCase:
    """One row of the catalogue.

    expect: an :class:`Expect`, or a mapping whose keys are tried in the order
        ``"{backend}:{class}"``, ``class``, ``backend``, ``"default"`` (see :func:`expectation`).
    logits / probs: the categorical classes' parameter, ``batch_shape + (K,)`` (one of them).
    binary: the Bernoulli classes' parameter, ``{"logits": ...}`` or ``{"probs": ...}`` of shape
        ``batch_shape`` (None: the case does not apply to them).
    temperature, t_1, n_steps: hyperparameters of the classes that take them (``HYPER``); an
        ndarray becomes a tensor / array, a Python number stays one.
    dtype: of the floating parameter arrays (``"float16"``, ``"bfloat16"`` torch only,
        ``"float32"``, ``"float64"``); ``"int64"``: integer parameter arrays.
    values: support family (``SUPPORT``) -> value to score instead of own draws; a family
        absent from it means the case does not apply to those classes.
    never: categorical classes that must never be drawn (bool, ``batch + (K,)``); the
        Bernoulli classes' counterpart is ``binary["never"]``: per element the value (0 or 1)
        that must never be drawn, -1 for none.
    pending: the expectation is a change that another branch of issue 15 makes (its name);
        a runner may mark the case as an expected failure until that branch is merged.
    """

    id: str
    bullet: str
    expect: Expect | Mapping[str, Expect]
    validate_args: bool = True
    logits: object = None
    probs: object = None
    binary: Mapping | None = None
    temperature: object = 0.5
    t_1: object = 0.5
    n_steps: object = 5
    dtype: str = "float32"
    values: Mapping | None = None
    never: object = None
    sample_shape: tuple = (200,)
    classes: tuple | None = None
    backends: tuple = ("torch", "jax")
    grad_hyper: bool = False
    check_stats: bool = False
    note: str = ""
    pending: str = ""

    def __str__(self):
        return f"{self.id}-{'validate' if self.validate_args else 'novalidate'}"


def applies(case: BadCase, class_name: str, backend: str) -> bool:
    """Whether the case runs for this class in this backend."""
    if backend not in case.backends:
        return False
    if case.classes is not None:
        return class_name in case.classes
    if class_name in BINARY_CLASSES and case.binary is None:
        return False
    if case.values is not None and SUPPORT[class_name] not in case.values:
        return False
    return True


def constructor_args(case: BadCase, class_name: str) -> dict:
    """Keyword arguments (NumPy arrays / Python numbers) that build ``class_name`` for ``case``."""
    if class_name in BINARY_CLASSES:
        args = {k: v for k, v in case.binary.items() if k in ("logits", "probs")}
    else:
        args = {"logits": case.logits} if case.probs is None else {"probs": case.probs}
    for name in HYPER[class_name]:
        args[name] = getattr(case, name)
    return args


def value_for(case: BadCase, class_name: str):
    """The value to score for this class, or None (score own draws)."""
    return None if case.values is None else case.values[SUPPORT[class_name]]


def never_for(case: BadCase, class_name: str):
    """What must never be drawn: a bool mask ``batch + (K,)`` (categorical classes), an int
    array ``batch`` of forbidden values (Bernoulli classes), or None."""
    if class_name in BINARY_CLASSES:
        return None if case.binary is None else case.binary.get("never")
    return case.never


def expectation(case: BadCase, class_name: str, backend: str) -> Expect:
    expect = case.expect
    if isinstance(expect, Expect):
        return expect
    for key in (f"{backend}:{class_name}", class_name, backend, "default"):
        if key in expect:
            return expect[key]
    raise KeyError(f"case {case.id} has no expectation for {backend}:{class_name}")


# --- judging observations --------------------------------------------------------------

#: outcome prefixes; the first three are good, the last two must never appear
GOOD = ("error", "result", "unchecked")
BAD = ("SILENT NaN", "MISMATCH")


def category(outcome: str) -> str:
    """The outcome's category: ``error``, ``result``, ``unchecked``, ``SILENT NaN`` or ``MISMATCH``."""
    for prefix in GOOD + BAD:
        if outcome.startswith(prefix):
            return prefix
    raise ValueError(f"not an outcome string: {outcome!r}")


def _result_failures(result: str, obs: Mapping) -> list[str]:
    """What the observations lack for the documented ``result`` (empty: it holds)."""
    fails = []
    if obs.get("shape_ok") is False:
        fails.append("wrong shapes")
    if result in ("finite", "masked", "normalised", "value_finite", "empty"):
        if obs.get("nonfinite"):
            fails.append("non-finite " + ", ".join(obs["nonfinite"]))
        if obs.get("off_support"):
            fails.append(f"{obs['off_support']} draws off the support")
    if result == "masked" and obs.get("drawn_never", 0) > 0:
        fails.append(f"a masked class drawn {obs['drawn_never']} times")
    if obs.get("stats_ok") is False:
        fails.append("mean / entropy not those of the normalised probs")
    if result in ("neg_inf", "warn_neg_inf") and not obs.get("log_prob_neg_inf"):
        fails.append("log_prob not -inf")
    if result == "warn_neg_inf" and not obs.get("warned"):
        fails.append("no warning")
    if result == "unchecked" and obs.get("nan"):
        fails.append("NaN in " + ", ".join(obs["nan"]))
    if result == "unchecked_nan" and not obs.get("nan"):
        fails.append("no NaN (validation off now checks or repairs it: update the catalogue)")
    return fails


def judge(case: BadCase, class_name: str, backend: str, obs: Mapping) -> str:
    """The outcome string of one run: ``error ...``, ``result ...``, ``unchecked ...`` (good)
    or ``SILENT NaN ...`` / ``MISMATCH ...`` (a defect)."""
    exp = expectation(case, class_name, backend)
    error = obs.get("error")
    nan = [n for n in obs.get("nan", ()) if n]
    if exp.error:
        if error is None:
            got = f"NaN in {', '.join(nan)}" if nan else "no error"
            prefix = "SILENT NaN" if nan else "MISMATCH"
            return f"{prefix}: expected {exp}, got {got}"
        name, _, message = error.partition(": ")
        missing = [n for n in exp.names if n.lower() not in message.lower()]
        # torch's "Expected value argument ... of distribution D(logits: ...)" names logits in
        # the repr of D, but blames the value
        blames_value = message.startswith(("Expected value argument", "value ")) and "value" not in exp.names
        if name != exp.error or missing or blames_value:
            return f"MISMATCH: expected {exp}, got {error[:200]}"
        return f"error {exp}" + (" (upstream)" if exp.upstream else "")
    if error is not None:
        return f"MISMATCH: expected {exp.result}, got {error[:200]}"
    if exp.result.startswith("unchecked"):
        fails = _result_failures(exp.result, obs)
        if fails:
            return f"MISMATCH: expected {exp.result}, got {'; '.join(fails)}"
        return f"unchecked: {'NaN in ' + ', '.join(nan) if nan else 'finite'}"
    if nan:
        return f"SILENT NaN: expected {exp.result}, got NaN in {', '.join(nan)}"
    fails = _result_failures(exp.result, obs)
    if fails:
        return f"MISMATCH: expected {exp.result}, got {'; '.join(fails)}"
    return f"result {exp.result}" + (" (upstream)" if exp.upstream else "")


# --- the cases ---------------------------------------------------------------------------

inf, nan = np.inf, np.nan
LOGITS = np.array([[0.0, -1.0, 1.5, 0.5], [2.0, 0.5, 0.0, -0.5]])  # K = 4, batch (2,)
BINARY = {"logits": np.array([0.3, -1.2])}
MASKED = np.array([[0.0, -inf, 1.5, -inf], [-inf, 0.5, 0.0, 0.0]])
MASKED_NEVER = np.isneginf(MASKED)
# Bernoulli: a -inf logit never draws 1, a +inf logit never draws 0
BINARY_MASKED = {"logits": np.array([-inf, 0.3, inf]), "never": np.array([1, -1, 0])}
ZERO_PROBS = np.array([[0.5, 0.0, 0.25, 0.25], [0.0, 0.0, 0.5, 0.5]])
BINARY_ZERO_PROBS = {"probs": np.array([0.0, 0.4, 1.0]), "never": np.array([1, -1, 0])}
# values off every support: not one-hot, sums != 1 (all positive, so the formulas stay
# finite where they take logs), logsumexp != 0, outside [0, 1], not in {0, 1}
OFF_SUPPORT = {
    "one_hot": np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]),
    "simplex": np.array([[0.4, 0.3, 0.2, 0.3], [0.1, 0.1, 0.1, 0.1]]),
    "log_simplex": np.log(np.array([[0.4, 0.3, 0.2, 0.3], [0.1, 0.1, 0.1, 0.1]])),
    "unit_interval": np.array([1.5, -0.5]),
    "boolean": np.array([0.5, 2.0]),
}
# values with mass on a masked class of MASKED (binary: BINARY_MASKED's first two... see below)
ON_MASKED = {
    "one_hot": np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]),
    "simplex": np.array([[0.2, 0.3, 0.25, 0.25], [0.4, 0.2, 0.2, 0.2]]),
    "log_simplex": np.log(np.array([[0.2, 0.3, 0.25, 0.25], [0.4, 0.2, 0.2, 0.2]])),
}
BINARY_ON_MASKED = {"logits": np.array([-inf, inf])}
ON_MASKED_BINARY = {"unit_interval": np.array([0.3, 0.7]), "boolean": np.array([1.0, 0.0])}

_TORCH_ON_JAX_OFF = {"torch": raises("ValueError", "value"), "jax": gives("warn_neg_inf")}
# Pyro's OneHotCategorical is torch's, re-exported by pyro_ext: its outcomes are upstream
_PYRO_K1 = (
    "torch.distributions.OneHotCategorical accepts K = 1 (a point mass): "
    "OneHotCategorical(logits=torch.zeros(2, 1)).sample() is [[1.], [1.]]"
)
_PYRO_INNER = (
    "torch.distributions.OneHotCategorical builds its Categorical(probs, logits) without "
    "validate_args, so torch's global default (on) validates the logits even with validate_args=False: "
    "'Expected parameter logits (Tensor of shape (2, 4)) of distribution Categorical(...) to satisfy "
    "the constraint IndependentConstraint(Real(), 1), but found invalid values'"
)
_PYRO_UNCHECKED = {
    "torch:OneHotCategorical": raises("ValueError", "logits", upstream=_PYRO_INNER),
    "default": gives("unchecked_nan"),
}
_PYRO_K_LARGE = (
    "torch's simplex constraint has a fixed tolerance 1e-6 and torch's OneHotCategorical checks the "
    "softmax of its logits: 'ValueError: Expected parameter probs (Tensor of shape (1, 100000)) of "
    "distribution OneHotCategorical() to satisfy the constraint Simplex(), but found invalid values'"
)
_PYRO_EMPTY_BATCH = (
    "torch's constraints.real_vector cannot check an empty batch: 'RuntimeError: cannot reshape "
    "tensor of 0 elements into shape [0, -1] because the unspecified dimension size -1 can be any "
    "value and is ambiguous' (IndependentConstraint.check)"
)
_PYRO_EMPTY_SAMPLE = (
    "torch.distributions.Categorical.sample draws with torch.multinomial: "
    "'RuntimeError: cannot sample n_sample <= 0 samples'"
)


def _cases() -> list[BadCase]:
    c = []
    add = c.append
    both = (True, False)

    # NaN / +-inf / huge logits
    add(
        BadCase(
            "logits-nan",
            "NaN / +-inf / huge logits",
            raises("ValueError", "logits"),
            logits=np.array([[0.0, nan, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]),
            binary={"logits": np.array([nan, 0.0])},
        )
    )
    add(
        BadCase(
            "logits-nan",
            "NaN / +-inf / huge logits",
            _PYRO_UNCHECKED,
            validate_args=False,
            logits=np.array([[0.0, nan, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]),
            binary={"logits": np.array([nan, 0.0])},
        )
    )
    add(
        BadCase(
            "logits-posinf",
            "NaN / +-inf / huge logits",
            raises("ValueError", "logits"),
            logits=np.array([[0.0, inf, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]),
            note="categorical only: +inf is a valid Bernoulli logit (p = 1), see mask-binary",
        )
    )
    add(
        BadCase(
            "logits-posinf",
            "NaN / +-inf / huge logits",
            _PYRO_UNCHECKED,
            validate_args=False,
            logits=np.array([[0.0, inf, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]),
        )
    )
    for scale in (1e4, 1e30):
        add(
            BadCase(
                f"logits-huge-{scale:.0e}",
                "NaN / +-inf / huge logits",
                gives("finite"),
                logits=scale * np.array([[1.0, -1.0, 0.0, 1.0], [0.5, 0.25, -1.0, 0.0]]),
                binary={"logits": scale * np.array([1.0, -1.0])},
            )
        )

    # -inf logits mask classes: never drawn; log_prob and gradients finite
    for v in both:
        add(
            BadCase(
                "mask-some",
                "-inf logits mask classes",
                gives("masked"),
                validate_args=v,
                logits=MASKED,
                never=MASKED_NEVER,
                binary=BINARY_MASKED,
                sample_shape=(1000,),
                check_stats=True,
            )
        )
        add(
            BadCase(
                "mask-all-but-one",
                "-inf logits mask classes",
                gives("masked"),
                validate_args=v,
                logits=np.array([[-inf, -inf, 2.0, -inf], [0.0, -inf, -inf, -inf]]),
                never=np.array([[True, True, False, True], [False, True, True, True]]),
                note="one class left: a point mass; the Concrete's density w.r.t. counting measure is 1",
            )
        )
        add(
            BadCase(
                "mask-tensor-temperature",
                "-inf logits mask classes",
                gives("masked"),
                validate_args=v,
                logits=MASKED,
                never=MASKED_NEVER,
                temperature=np.array([0.3, 2.0]),
                grad_hyper=True,
                classes=tuple(c for c in TEMPERATURE_CLASSES if c not in BINARY_CLASSES),
            )
        )
        add(
            BadCase(
                "mask-value-on-masked",
                "-inf logits mask classes",
                gives("neg_inf"),
                validate_args=v,
                logits=MASKED,
                values=ON_MASKED,
            )
        )
        add(
            BadCase(
                "mask-binary-value-on-masked",
                "-inf logits mask classes",
                gives("neg_inf"),
                validate_args=v,
                binary=BINARY_ON_MASKED,
                values=ON_MASKED_BINARY,
                classes=BINARY_CLASSES,
            )
        )
    for dtype in ("float64", "float16", "bfloat16"):
        add(
            BadCase(
                f"mask-some-{dtype}",
                "-inf logits mask classes",
                gives("masked"),
                dtype=dtype,
                logits=MASKED,
                never=MASKED_NEVER,
                binary=BINARY_MASKED,
                sample_shape=(1000,),
                backends=("torch", "jax") if dtype == "float64" else ("torch",),
            )
        )

    # all-masked rows
    all_masked = np.array([[-inf, -inf, -inf, -inf], [0.0, 0.0, 0.0, 0.0]])
    add(BadCase("mask-all", "all-masked rows", raises("ValueError", "logits"), logits=all_masked))
    add(BadCase("mask-all", "all-masked rows", _PYRO_UNCHECKED, validate_args=False, logits=all_masked))

    # probs: not summing to 1, negative, exact zeros
    unnormalised = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
    add(
        BadCase(
            "probs-unnormalised",
            "probs not summing to 1, negative, zeros",
            {
                "torch": gives("normalised", upstream="torch.distributions normalises probs"),
                "jax": raises("ValueError", "probs"),
            },
            probs=unnormalised,
            check_stats=True,
            note="torch normalises probs (torch.distributions, D5); NumPyro rejects them under validation",
        )
    )
    add(
        BadCase(
            "probs-unnormalised",
            "probs not summing to 1, negative, zeros",
            gives("normalised"),
            validate_args=False,
            probs=unnormalised,
            check_stats=True,
        )
    )
    negative = np.array([[0.5, -0.1, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25]])
    add(
        BadCase(
            "probs-negative",
            "probs not summing to 1, negative, zeros",
            raises("ValueError", "probs"),
            probs=negative,
            binary={"probs": np.array([-0.1, 0.5])},
        )
    )
    add(
        BadCase(
            "probs-above-1",
            "probs not summing to 1, negative, zeros",
            raises("ValueError", "probs"),
            binary={"probs": np.array([1.5, 0.5])},
            classes=BINARY_CLASSES,
        )
    )
    add(
        BadCase(
            "probs-nan",
            "probs not summing to 1, negative, zeros",
            raises("ValueError", "probs"),
            probs=np.array([[0.5, nan, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]]),
            binary={"probs": np.array([nan, 0.5])},
        )
    )
    for v in both:
        add(
            BadCase(
                "probs-zero",
                "probs not summing to 1, negative, zeros",
                gives("masked"),
                validate_args=v,
                probs=ZERO_PROBS,
                never=ZERO_PROBS == 0,
                binary=BINARY_ZERO_PROBS,
                sample_shape=(1000,),
            )
        )
    for dtype in ("float64", "float16", "bfloat16"):
        add(
            BadCase(
                f"probs-zero-{dtype}",
                "probs not summing to 1, negative, zeros",
                gives("masked"),
                dtype=dtype,
                probs=ZERO_PROBS,
                never=ZERO_PROBS == 0,
                binary=BINARY_ZERO_PROBS,
                sample_shape=(1000,) if dtype == "float64" else (4000,),
                backends=("torch", "jax") if dtype == "float64" else ("torch",),
                note="4,000 draws per row: a zero class clamped to log(eps) was drawn in 0.7% (bfloat16), "
                "0.09% (float16)",
            )
        )

    # temperature: 0, negative, NaN, batched tensors
    temp_classes = TEMPERATURE_CLASSES
    for name, t in (("zero", 0.0), ("negative", -1.0), ("nan", nan), ("inf", inf)):
        add(
            BadCase(
                f"temperature-{name}",
                "temperature 0, negative, NaN, batched",
                raises("ValueError", "temperature", "> 0"),
                temperature=t,
                logits=LOGITS,
                binary=BINARY,
                classes=temp_classes,
            )
        )
        # validation off: 0 and NaN make NaN; a negative or infinite temperature leaves the hard
        # classes' draws exact one-hots (of argmin for a negative one) with finite gradients
        off = (
            gives("unchecked_nan")
            if name in ("zero", "nan")
            else {
                **{
                    c: gives("unchecked")
                    for c in ("RelaxedOneHotCategoricalStraightThrough", "RelaxedBernoulliStraightThrough", "ReinMax")
                },
                "default": gives("unchecked_nan"),
            }
        )
        add(
            BadCase(
                f"temperature-{name}",
                "temperature 0, negative, NaN, batched",
                off,
                temperature=t,
                validate_args=False,
                logits=LOGITS,
                binary=BINARY,
                classes=temp_classes,
                note="validation off: a Python-number temperature is not checked either (D4)",
            )
        )
    add(
        BadCase(
            "temperature-tensor-zero",
            "temperature 0, negative, NaN, batched",
            raises("ValueError", "temperature"),
            temperature=np.array([0.5, 0.0]),
            logits=LOGITS,
            binary=BINARY,
            classes=temp_classes,
        )
    )
    add(
        BadCase(
            "temperature-batched",
            "temperature 0, negative, NaN, batched",
            gives("finite"),
            temperature=np.array([0.05, 5.0]),
            grad_hyper=True,
            logits=LOGITS,
            binary=BINARY,
            classes=temp_classes,
        )
    )
    add(
        BadCase(
            "temperature-batched-3x1",
            "temperature 0, negative, NaN, batched",
            gives("finite"),
            temperature=np.array([[0.1], [1.0], [3.0]]),
            logits=LOGITS,
            binary=BINARY,
            classes=temp_classes,
            note="temperature (3, 1) broadcasts with batch (2,) to (3, 2)",
        )
    )
    add(
        BadCase(
            "temperature-shape-mismatch",
            "temperature 0, negative, NaN, batched",
            raises("ValueError", "temperature"),
            temperature=np.array([0.5, 1.0, 2.0]),
            logits=LOGITS,
            binary=BINARY,
            classes=temp_classes,
            note="shape (3,) does not broadcast with batch (2,): never to the event dimension",
        )
    )
    add(
        BadCase(
            "temperature-python-int",
            "temperature 0, negative, NaN, batched",
            gives("finite"),
            temperature=1,
            logits=LOGITS,
            binary=BINARY,
            classes=temp_classes,
        )
    )

    # t_1 <= 0, > 1, = 1
    for name, t_1 in (("zero", 0.0), ("negative", -0.5), ("above-1", 1.5), ("nan", nan)):
        add(
            BadCase(
                f"t_1-{name}",
                "t_1 <= 0, > 1, = 1",
                raises("ValueError", "t_1", "(0, 1]"),
                t_1=t_1,
                logits=LOGITS,
                classes=REDGE_CLASSES,
            )
        )
    add(
        BadCase(
            "t_1-tensor-zero",
            "t_1 <= 0, > 1, = 1",
            raises("ValueError", "t_1"),
            t_1=np.array([0.5, 0.0]),
            logits=LOGITS,
            classes=REDGE_CLASSES,
        )
    )
    for name, t_1 in (("one", 1.0), ("tiny", 1e-8)):
        add(
            BadCase(f"t_1-{name}", "t_1 <= 0, > 1, = 1", gives("finite"), t_1=t_1, logits=LOGITS, classes=REDGE_CLASSES)
        )
    add(
        BadCase(
            "t_1-batched",
            "t_1 <= 0, > 1, = 1",
            gives("finite"),
            t_1=np.array([0.3, 1.0]),
            grad_hyper=True,
            logits=LOGITS,
            classes=REDGE_CLASSES,
        )
    )

    # n_steps 0, 1, non-integer: structural, checked whatever validate_args says
    for v in both:
        for name, n in (("zero", 0), ("one", 1)):
            add(
                BadCase(
                    f"n_steps-{name}",
                    "n_steps 0, 1, non-integer",
                    raises("ValueError", "n_steps", ">= 2"),
                    n_steps=n,
                    validate_args=v,
                    logits=LOGITS,
                    classes=REDGE_CLASSES,
                )
            )
        for name, n in (("float", 2.5), ("bool", True)):
            add(
                BadCase(
                    f"n_steps-{name}",
                    "n_steps 0, 1, non-integer",
                    raises("TypeError", "n_steps", "integer"),
                    n_steps=n,
                    validate_args=v,
                    logits=LOGITS,
                    classes=REDGE_CLASSES,
                )
            )
    add(
        BadCase(
            "n_steps-two", "n_steps 0, 1, non-integer", gives("finite"), n_steps=2, logits=LOGITS, classes=REDGE_CLASSES
        )
    )

    # K = 1, 2, 100,000; empty batch shapes
    add(
        BadCase(
            "K-1",
            "K = 1, 2, 100000; empty batches",
            {
                "torch:OneHotCategorical": gives("finite", upstream=_PYRO_K1),
                "default": raises("ValueError", "logits", "at least 2"),
            },
            logits=np.zeros((2, 1)),
        )
    )
    add(
        BadCase(
            "K-2",
            "K = 1, 2, 100000; empty batches",
            gives("finite"),
            logits=np.array([[0.0, 1.0], [-3.0, 2.0]]),
            binary=BINARY,
        )
    )
    add(
        BadCase(
            "K-100000",
            "K = 1, 2, 100000; empty batches",
            {
                "torch:OneHotCategorical": raises("ValueError", "probs", upstream=_PYRO_K_LARGE),
                "default": gives("finite"),
            },
            logits=np.random.default_rng(0).normal(0.0, 3.0, size=(1, 100_000)),
            sample_shape=(2,),
        )
    )
    add(
        BadCase(
            "batch-empty",
            "K = 1, 2, 100000; empty batches",
            {
                "torch:OneHotCategorical": raises("RuntimeError", "reshape", upstream=_PYRO_EMPTY_BATCH),
                "default": gives("empty"),
            },
            logits=np.zeros((0, 4)),
            binary={"logits": np.zeros((0,))},
            sample_shape=(3,),
        )
    )
    add(
        BadCase(
            "sample-empty",
            "K = 1, 2, 100000; empty batches",
            {
                "torch:OneHotCategorical": raises("RuntimeError", "n_sample", upstream=_PYRO_EMPTY_SAMPLE),
                "default": gives("empty"),
            },
            logits=LOGITS,
            binary=BINARY,
            sample_shape=(0,),
        )
    )

    # mismatched value shapes
    add(
        BadCase(
            "value-event-mismatch",
            "mismatched value shapes",
            raises("ValueError", "value", "event_shape"),
            logits=LOGITS,
            values={
                "one_hot": np.full((2, 5), 0.2),
                "simplex": np.full((2, 5), 0.2),
                "log_simplex": np.full((2, 5), -1.6),
            },
        )
    )
    add(
        BadCase(
            "value-batch-mismatch",
            "mismatched value shapes",
            raises("ValueError", "value", "batch_shape"),
            logits=LOGITS,
            binary=BINARY,
            values={
                "one_hot": np.tile(np.eye(4)[:1], (3, 1)),
                "simplex": np.full((3, 4), 0.25),
                "log_simplex": np.full((3, 4), np.log(0.25)),
                "unit_interval": np.full((3,), 0.5),
                "boolean": np.ones((3,)),
            },
        )
    )

    # integer dtypes: promoted to the default float dtype
    add(
        BadCase(
            "int-logits",
            "integer dtypes",
            gives("finite"),
            dtype="int64",
            logits=np.array([[0, 1, 2, 3], [1, 1, 0, -2]]),
            binary={"logits": np.array([1, -2])},
            note="int logits are promoted to the default float dtype; temperature 0.5 stays 0.5 (f)",
        )
    )
    add(
        BadCase(
            "int-probs",
            "integer dtypes",
            gives("finite"),
            dtype="int64",
            probs=np.array([[0, 0, 1, 0], [1, 0, 0, 0]]),
            never=np.array([[1, 1, 0, 1], [0, 1, 1, 1]]) == 1,
            binary={"probs": np.array([1, 0]), "never": np.array([0, 1])},
            note="int probs (one-hot: a point mass) are promoted to the default float dtype; zeros never drawn",
        )
    )
    add(
        BadCase(
            "int-value",
            "integer dtypes",
            gives("value_finite"),
            logits=LOGITS,
            values={
                "one_hot": np.array([[0, 0, 1, 0], [1, 0, 0, 0]], dtype=np.int64),
                "boolean": np.array([1, 0], dtype=np.int64),
            },
            binary=BINARY,
        )
    )

    # float16 / bfloat16 (torch) and float64
    for dtype in ("float64", "float16", "bfloat16"):
        add(
            BadCase(
                f"dtype-{dtype}",
                "float16 / bfloat16 (torch) and float64",
                gives("finite"),
                dtype=dtype,
                logits=LOGITS,
                binary=BINARY,
                backends=("torch", "jax") if dtype == "float64" else ("torch",),
            )
        )

    # off-support values, validation on and off
    add(
        BadCase(
            "value-off-support",
            "off-support values, validation on and off",
            _TORCH_ON_JAX_OFF,
            logits=LOGITS,
            binary=BINARY,
            values=OFF_SUPPORT,
            note="torch raises; NumPyro warns and returns -inf (its convention, D3)",
        )
    )
    add(
        BadCase(
            "value-off-support",
            "off-support values, validation on and off",
            gives("unchecked"),
            validate_args=False,
            logits=LOGITS,
            binary=BINARY,
            values=OFF_SUPPORT,
            note="validation off: the formula at the point (finite for these values; torch's "
            "SigmoidTransform clamps x to [tiny, 1 - eps] before taking its logit)",
        )
    )
    return c


CASES: list[BadCase] = _cases()
