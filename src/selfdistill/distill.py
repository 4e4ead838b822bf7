"""The round chain: teacher -> self-distillation rounds -> partial-label (PLL) students.

Round 0 (the teacher) is the exact probe on one-hot observed labels y; round t >= 1 is the exact
probe on the soft outputs P_{t-1} of round t-1 on the same training points (same features, reg,
loss; warm-started from round t-1). The PLL student is trained once on the top-k refinement of
the teacher's outputs (docs/science.md: SD, the PLL student).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_choice, check_features, check_int, check_labels, check_memory, validate_params
from .metrics import model_metrics, topk_coverage
from .models import TEACHER, ModelId
from .probe import ChainCache, check_sample_weight, check_stop, fit_ce_unchecked, fit_pll_unchecked, solver_settings
from .targets import check_mix, refine_targets

__all__ = ["PLL_LOSSES", "ChainRound", "DistillResult", "distill", "pll_model_names", "pll_round", "run_chain"]

PLL_LOSSES = ("uniform", "candidate", "gce")


@dataclass
class DistillResult:
    """What :func:`distill` returns.

    Parameters
    ----------
    models : dict name -> LinearProbe, names "round 0" ... "round R" then the PLL students
        ("pll-<loss>", one per loss); names are :class:`selfdistill.models.ModelId` display names.
    metrics : list of dicts, one per model, in the order of ``models`` (see :func:`distill`).
    train_probs : dict name -> (n, K) softmax outputs of that model on the training points.
    y : (n,) int array
        The given (possibly noisy) labels.
    y_true : (n,) int array or None
        Clean labels, when known.
    config : the arguments that made it (JSON-serialisable).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import distill
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3)); y = np.argmax(X, axis=1); y[:4] = (y[:4] + 1) % 3
    >>> result = distill(X, y, reg=1e-2, rounds=1, y_true=np.argmax(X, axis=1))
    >>> list(result.models)
    ['round 0', 'round 1', 'pll-uniform']
    >>> result.train_probs["round 1"].shape
    (40, 3)
    """

    models: dict
    metrics: list
    train_probs: dict
    y: np.ndarray
    y_true: np.ndarray | None = None
    config: dict = field(default_factory=dict)

    def _check_name(self, name):
        if name not in self.models:
            raise KeyError(f"name must be one of {list(self.models)}, got {name!r}")

    def corrected_labels(self, name: str) -> np.ndarray:
        """The model's predicted labels on the training points, (n,): its suggested correction.

        Parameters
        ----------
        name : str
            A model name of ``models``, e.g. ``"round 1"`` or ``"pll-uniform"``.

        Returns
        -------
        (n,) int array
            argmax_k of the model's outputs on each training point.

        Raises
        ------
        KeyError
            If ``name`` is not a model of the result.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import distill
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 3)); y = np.argmax(X, axis=1); y[:4] = (y[:4] + 1) % 3
        >>> result = distill(X, y, reg=1e-2, rounds=1, y_true=np.argmax(X, axis=1))
        >>> fixed = result.corrected_labels("round 1")
        >>> fixed.shape, bool((fixed[:4] == np.argmax(X[:4], axis=1)).mean() >= 0.5)
        ((40,), True)
        """
        self._check_name(name)
        return np.argmax(self.train_probs[name], axis=1)

    def label_issues(self, name: str) -> np.ndarray:
        """Indices of training points whose given label the model disagrees with, most confident first.

        Ranked by the margin p(predicted) - p(given) of the model's outputs on the training point,
        largest first, as the normalized margin (p(given) - p(predicted) + 1) / 2, lowest first (ties
        by index): :func:`selfdistill.metrics.flag_label_issues`, the ranking of
        :func:`selfdistill.inspect_labels`. ``corrected_labels(name)[idx]`` is the suggested class.

        Parameters
        ----------
        name : str
            A model name of ``models``.

        Returns
        -------
        (m,) int array
            Indices of the m flagged training points, most confident first.

        Raises
        ------
        KeyError
            If ``name`` is not a model of the result.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import distill
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 3)); y = np.argmax(X, axis=1); y[:4] = (y[:4] + 1) % 3
        >>> result = distill(X, y, reg=1e-2, rounds=1, y_true=np.argmax(X, axis=1))
        >>> idx = result.label_issues("round 0")
        >>> bool(np.all(result.corrected_labels("round 0")[idx] != y[idx]))
        True
        """
        from .metrics import flag_label_issues  # imported here: this method is the only user

        self._check_name(name)
        return flag_label_issues(self.train_probs[name], self.y).ranked

    def metric_dict(self, name: str) -> dict:
        """All metrics of one model (a copy of its ``metrics`` entry).

        Parameters
        ----------
        name : str
            A model name of ``models``.

        Returns
        -------
        dict
            Metric name -> value (the keys listed under :func:`distill`'s Returns).

        Raises
        ------
        KeyError
            If ``name`` is not a model of the result.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import distill
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 3)); y = np.argmax(X, axis=1); y[:4] = (y[:4] + 1) % 3
        >>> result = distill(X, y, reg=1e-2, rounds=1, y_true=np.argmax(X, axis=1))
        >>> m = result.metric_dict("pll-uniform")
        >>> m["model"], m["test_acc"] is None
        ('pll-uniform', True)
        """
        self._check_name(name)
        return dict(next(m for m in self.metrics if m["model"] == name))

    def metric(self, name: str, key: str):
        """One metric of one model, e.g. ``result.metric("round 2", "test_acc")``.

        Parameters
        ----------
        name : str
            A model name of ``models``.
        key : str
            A metric name (see :func:`distill`'s Returns).

        Returns
        -------
        object
            The metric's value (a float, int, bool, or None when its data was missing).

        Raises
        ------
        KeyError
            If ``name`` is not a model of the result.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import distill
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 3)); y = np.argmax(X, axis=1); y[:4] = (y[:4] + 1) % 3
        >>> result = distill(X, y, reg=1e-2, rounds=1, y_true=np.argmax(X, axis=1))
        >>> 0.0 <= result.metric("round 1", "train_acc") <= 1.0
        True
        """
        self._check_name(name)
        return next(m[key] for m in self.metrics if m["model"] == name)


@dataclass
class ChainRound:
    """One fitted round of a chain: the ``targets`` it was fitted on, the ``model`` its fit
    returned, and its outputs ``probs`` (n, K) on the training points.

    Parameters
    ----------
    targets : (n,) int array or (n, K) float array
        The round's training targets (labels for the teacher, P_{t-1} or its refinement after).
    model : object
        What the chain's ``fit`` returned (a LinearProbe, or a theory module's fixed point).
    probs : (n, K) float array
        The round's outputs P_t on the training points.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.distill import ChainRound
    >>> r = ChainRound(targets=np.array([0, 1]), model=None, probs=np.full((2, 2), 0.5))
    >>> r.probs.shape
    (2, 2)
    """

    targets: np.ndarray
    model: Any
    probs: np.ndarray


def run_chain(fit, targets, rounds, *, refine=None) -> list[ChainRound]:
    """The self-distillation chain: fit round 0 on ``targets``, then hand each round's outputs on.

    Round t >= 1 is fitted on ``refine(probs of round t-1)`` (default: the outputs themselves,
    the paper's SD). The one place where this loop lives: :func:`distill` (fits on features),
    :func:`selfdistill.theory.exact_chain` (fixed points from a Gram matrix) and
    :meth:`selfdistill.theory.BlockModel.exact_probs` (the block model's group probe) each pass
    their own ``fit``.

    Parameters
    ----------
    fit : callable (targets, chain) -> (model, probs (n, K)); ``chain`` is the list of earlier
        :class:`ChainRound` (empty for the teacher), for warm starts.
    targets : round 0's targets: (n,) labels or (n, K) rows summing to 1, as ``fit`` takes them.
    rounds : R >= 0 SD rounds after the teacher.
    refine : callable probs (n, K) -> the next round's targets, or None.

    Returns
    -------
    list of R + 1 :class:`ChainRound`, round 0 (the teacher) first.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import fit_linear_probe
    >>> from selfdistill.distill import run_chain
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = np.argmax(X, axis=1)
    >>> def fit(T, chain):
    ...     m = fit_linear_probe(X, T, 1e-2, n_classes=3, init=chain[-1].model if chain else None)
    ...     return m, m.predict_proba(X)
    >>> chain = run_chain(fit, y, 2)
    >>> len(chain), chain[1].targets is chain[0].probs
    (3, True)
    """
    chain: list[ChainRound] = []
    for t in range(rounds + 1):
        if t:
            targets = chain[-1].probs if refine is None else refine(chain[-1].probs)
        model, probs = fit(targets, chain)
        chain.append(ChainRound(targets, model, probs))
    return chain


def pll_round(fit, chain, top_k) -> ChainRound:
    """The PLL student of a chain: ``fit`` on the teacher's top-k targets (1/k each, ties shared:
    :func:`selfdistill.refine_targets`), warm-started from the teacher (``fit`` sees
    ``chain[:1]``). Returns its :class:`ChainRound`.

    Parameters
    ----------
    fit : callable (targets, chain) -> (model, probs (n, K))
        As for :func:`run_chain`.
    chain : list of ChainRound
        A chain from :func:`run_chain`; only its teacher, ``chain[0]``, is used.
    top_k : int
        Candidate-set size k (2 <= k < K).

    Returns
    -------
    ChainRound
        The student: its (n, K) top-k targets (each row 1/k on the teacher's k most probable
        labels, tied labels sharing the k-th place's mass), its model and its outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import fit_linear_probe
    >>> from selfdistill.distill import pll_round, run_chain
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = np.argmax(X, axis=1)
    >>> def fit(T, chain):
    ...     m = fit_linear_probe(X, T, 1e-2, n_classes=3, init=chain[-1].model if chain else None)
    ...     return m, m.predict_proba(X)
    >>> student = pll_round(fit, run_chain(fit, y, 0), top_k=2)
    >>> np.sort(student.targets[0]).tolist(), student.probs.shape  # 1/2 on the teacher's top 2
    ([0.0, 0.5, 0.5], (40, 3))
    """
    targets = refine_targets(chain[0].probs, "topk", top_k=top_k)
    model, probs = fit(targets, chain[:1])
    return ChainRound(targets, model, probs)


def student_warm_start(prev, prev2=None) -> dict:
    """Warm start of an SD student: keyword arguments for :func:`selfdistill.fit_linear_probe`.

    The round t student starts from its teacher (round t-1, ``prev``). From round 2 on it also
    gets the direction D = W_{t-1} - W_{t-2} (``prev2`` = round t-2): the fit first moves to the
    minimum of its own objective on the line W_{t-1} + c D. Why: linearised, consecutive rounds'
    changes obey W_{t+1} - W_t ~ (I - reg H^-1)(W_t - W_{t-1}) (H the Hessian), so the last change
    predicts the next one in the well-curved directions; on the CIFAR-100-scale benchmark this
    cut rounds 2-4 from 358 to 249 Hessian-vector products. Round 1 has no such direction
    (W_0 - 0 is not a change between rounds; scaling W_0 gained nothing).
    """
    if prev2 is None:
        return {"init": prev}
    return {"init": prev, "_init_direction": (prev.coef_ - prev2.coef_, prev.intercept_ - prev2.intercept_)}


def pll_model_names(pll_loss) -> list[str]:
    """Model names of the PLL students: "pll-<loss>" for each loss (one or several: one scheme).

    Parameters
    ----------
    pll_loss : str or sequence of str
        One PLL loss of ``PLL_LOSSES`` or several.

    Returns
    -------
    list of str
        The names :func:`distill` gives the students, in the order of ``pll_loss``.

    Examples
    --------
    >>> from selfdistill.distill import pll_model_names
    >>> pll_model_names("gce"), pll_model_names(["uniform", "gce"])
    (['pll-gce'], ['pll-uniform', 'pll-gce'])
    """
    losses = [pll_loss] if isinstance(pll_loss, str) else pll_loss
    return [ModelId.pll(loss).name for loss in losses]


def _check_pll(pll, pll_loss, top_k, K):
    """(list of PLL losses, checked top_k) of distill's PLL arguments."""
    losses = [pll_loss] if isinstance(pll_loss, str) else list(pll_loss)
    if not pll:  # top_k still sets the teacher's topk_coverage metric
        return losses, check_int(top_k, "top_k", low=1)
    if not losses:
        raise ValueError("pll_loss must name at least one loss")
    for loss in losses:
        check_choice(loss, "pll_loss", PLL_LOSSES)
    if K < 3:
        raise ValueError(f"top_k must be >= 2 and < K; with K={K} classes there is no PLL student (pass pll=False)")
    return losses, check_int(top_k, "top_k", low=2, high=K - 1)


def _check_eval_sets(X, X_test, y_test, y_true, K):
    """(X_test, y_test, y_true) checked against X (n, d) and K."""
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together")
    if X_test is not None:
        X_test = check_features(X_test, "X_test", stream=True)
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(f"X_test has {X_test.shape[1]} features but X has {X.shape[1]}")
        y_test = check_labels(y_test, "y_test", n_samples=X_test.shape[0], n_classes=K)
    if y_true is not None:
        y_true = check_labels(y_true, "y_true", n_samples=X.shape[0], n_classes=K)
    return X_test, y_test, y_true


def _fit_pll_students(X, reg, K, top_k, losses, models, probs, solver, bar, warm_starts, stop):
    """Fit one PLL student per (name, loss) of ``losses`` on the teacher's top-k targets (ties
    shared, see refine_targets), from the teacher's weights (the uniform, convex one from
    ``warm_starts[name]`` where given, and with the ``stop`` settings); adds them to models and probs."""
    teacher = TEACHER.name
    T_pll = refine_targets(probs[teacher], "topk", top_k=top_k)
    for name, loss in losses.items():
        if loss == "uniform":
            init = warm_starts.get(name, models[teacher])
            models[name] = fit_ce_unchecked(X, T_pll, K, reg, {**solver, **stop}, init=init)  # checked: the twins
        else:
            models[name] = fit_pll_unchecked(X, T_pll, loss, reg, solver, init=models[teacher])
        probs[name] = models[name]._proba(X)
        if bar is not None:
            bar.update()


def metrics_per_model(models, probs, y, y_true, X_test, y_test, coverage) -> list[dict]:
    """:func:`selfdistill.metrics.model_metrics` of every model (train predictions from ``probs``).

    Package-internal (recipe's chains report with it too): not in ``__all__``.
    """
    return [
        model_metrics(name, train_pred=np.argmax(probs[name], axis=1), y_given=y, y_true=y_true,
                      test_pred=None if X_test is None else np.argmax(model._logits(X_test), axis=1), y_test=y_test,
                      coverage=coverage, probe=model)
        for name, model in models.items()
    ]


def _check_chain_memory(n_models: int, n: int, K: int, d: int) -> None:
    """Refuse, with the estimate, a chain whose kept models and training outputs ((K, d) and (n, K)
    float64 arrays per model) would not fit in this machine's physical memory."""
    check_memory(n_models * (n * K + K * d) * 8, "rounds", f"a chain of {n_models:,} models (weights and "
                 "training outputs)", "ask for fewer rounds")


def distill(
    X,
    y,
    *,
    reg,
    rounds=4,
    pll=True,
    top_k=2,
    pll_loss="uniform",
    temperature=1.0,
    mix=1.0,
    X_test=None,
    y_test=None,
    y_true=None,
    fit_intercept=False,
    n_classes=None,
    tol=1e-8,
    max_iter=None,
    progress=False,
    backend="numpy",
    device=None,
    dtype=np.float64,
    stop="tol",
    sample_weight=None,
    _cache=None,
    _warm=None,
) -> DistillResult:
    """Run the teacher, ``rounds`` self-distillation rounds and the PLL student(s).

    Parameters
    ----------
    X : (n, d) training features.
        X may be a float32 or float64 ``numpy.memmap`` (e.g. ``np.load("X.npy", mmap_mode="r")``)
        too large for memory: it is then never loaded whole, but validated, fitted on and
        predicted from in row chunks (memory O(chunk * d + n * K)); a float32 map is read as
        float32 and each chunk upcast to the solver's ``dtype``.
    y : (n,) int array
        Given (possibly noisy) labels in 0..K-1.
    reg : L2 strength of every probe (> 0).
    rounds : R >= 0 SD rounds after the teacher; round t is trained on refine_targets(P_{t-1},
        "soft", temperature=, mix=, given=y).
    pll : train the PLL student(s) on the teacher's top-k labels.
    top_k : size k of the candidate sets (2 <= k < K). Labels tied with the teacher's k-th most
        probable one share its candidate mass (:func:`selfdistill.refine_targets`): every PLL
        loss trains on the same targets, and no class is favoured by its index.
    pll_loss : "uniform" (cross-entropy to 1/k on each candidate; convex; the paper's theory),
        "candidate" (-log of the candidates' total probability; from the teacher's weights),
        "gce" (generalised CE, q = 0.7, averaged over the candidates; the authors' code), or a
        sequence of them (one student each, named "pll-<loss>").
        The PLL targets are the pure top-k refinement (``mix`` applies to the SD rounds only).
    temperature, mix : see :func:`selfdistill.refine_targets`.
    X_test, y_test : optional test set for ``test_acc`` (X_test may be a memmap too, like X).
    y_true : optional (n,) clean training labels for the label-correction metrics.
    fit_intercept, n_classes, tol, max_iter : passed to the solver.
    progress : show a progress bar over the models.
    backend, device, dtype : the solver's array backend ("numpy", or "torch" with device "cpu" or
        "cuda") and working precision (float64, or float32 with a float64 finish); see
        :func:`selfdistill.fit_linear_probe`. The chain shares one backend copy of X.
    stop : ``"tol"`` or ``"certain"``: the convex fits' (SD rounds, uniform PLL) stopping rule,
        see :func:`selfdistill.fit_linear_probe`. With ``"certain"`` each stops once its training
        predictions, its X_test predictions and (the teacher) its training top-k sets are those of
        the exact minimiser of its own objective (its targets being the previous round's computed
        outputs); each model records ``n_uncertain_``. The non-convex PLL students stop at ``tol``.
    sample_weight : optional (n,) non-negative row weights with a positive sum: every model of the
        chain minimises the weighted mean over the rows (:func:`selfdistill.fit_linear_probe`); a
        0/1 vector is a subset of the rows without copying X (the training metrics still count
        every row).
    _cache : internal: a ``probe.ChainCache`` to share with other chains on the same X (the
        backend copy of X and the eigen-decomposition of X^T X / n; :mod:`selfdistill.model_selection`
        shares one along the reg path).
    _warm : internal: {model name: LinearProbe} warm starts replacing the chain's own ones for the
        convex models (SD rounds, the uniform PLL student): the same model at a neighbouring reg or
        on a subset of the points. The non-convex PLL students (candidate, gce) always start from
        their teacher, since their answer depends on where they start.

    Returns
    -------
    DistillResult. Each ``metrics`` entry has: model, test_acc, train_acc (against y_true),
    kept (fraction of points whose given label was right that the model still gets right),
    corrected (fraction of points whose given label was wrong that the model gets right),
    agree_given (agreement with y), topk_coverage (fraction of points whose teacher top-k holds
    y_true), n_iter, n_grad_evals, n_hessp, objective, grad_norm, converged, seconds. Metrics
    that need missing data are None.

    Raises
    ------
    ValueError
        If an argument is out of range (the message names it, its value and what was expected),
        or y holds a single class.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import distill
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4)); y_true = np.argmax(X[:, :3], axis=1)
    >>> y = y_true.copy(); y[:6] = (y[:6] + 1) % 3  # 10% of the labels flipped
    >>> result = distill(X, y, reg=1e-2, rounds=1, top_k=2, y_true=y_true)
    >>> [m["model"] for m in result.metrics]
    ['round 0', 'round 1', 'pll-uniform']
    >>> {k: round(result.metric("round 0", k), 2) for k in ("kept", "corrected", "topk_coverage")}
    {'kept': 0.98, 'corrected': 0.83, 'topk_coverage': 1.0}
    """
    X = check_features(X, stream=True)  # a float32/float64 memmap stays one (streamed by the fits)
    n = X.shape[0]
    # every argument is checked once, here: the fits below are the probe's private twins, which check nothing
    p = validate_params(n_classes=n_classes, reg=reg, rounds=rounds, temperature=temperature, stop=stop)
    reg, rounds, temperature = p["reg"], p["rounds"], p["temperature"]
    y = check_labels(y, "y", n_samples=n, n_classes=n_classes)
    K = p["n_classes"] or int(y.max()) + 1
    if K < 2 or np.unique(y).size < 2:
        raise ValueError(f"y must hold at least 2 classes, got a single class {np.unique(y).tolist()}")
    losses, top_k = _check_pll(pll, pll_loss, top_k, K)
    _check_chain_memory(rounds + 1 + (len(losses) if pll else 0), n, K, X.shape[1])
    mix = check_mix(mix)
    X_test, y_test, y_true = _check_eval_sets(X, X_test, y_test, y_true, K)

    solver = dict(solver_settings(tol, max_iter, fit_intercept=fit_intercept, backend=backend, device=device,
                                  dtype=dtype, cache=ChainCache() if _cache is None else _cache),
                  sample_weight=check_sample_weight(sample_weight, n))
    # stop settings, checked up front (X_test is, above): the teacher certifies its top-k sets, the students top-1
    teacher_stop = check_stop(p["stop"], X_test, top_k if pll else 1, X, fit_intercept, solver["backend"],
                              checked=True)
    student_stop = dict(teacher_stop, certify_top_k=1)
    warm_starts = dict(_warm or {})
    pll_names = pll_model_names(pll_loss) if pll else []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=rounds + 1 + len(pll_names), desc="distill", unit="model")

    def fit_round(targets, chain):
        t = len(chain)
        warm = student_warm_start(chain[-1].model, chain[-2].model if t >= 2 else None) if t else {}
        name = ModelId.round_(t).name
        if name in warm_starts:
            warm = {"init": warm_starts[name]}
        model = fit_ce_unchecked(X, targets, K, reg, {**solver, **(student_stop if t else teacher_stop)}, **warm)
        if bar is not None:
            bar.update()
        return model, model._proba(X)

    chain = run_chain(
        fit_round, y, rounds, refine=lambda P: refine_targets(P, "soft", temperature=temperature, mix=mix, given=y)
    )
    names = [ModelId.round_(t).name for t in range(len(chain))]
    models = {name: r.model for name, r in zip(names, chain, strict=True)}
    probs = {name: r.probs for name, r in zip(names, chain, strict=True)}
    if pll:
        _fit_pll_students(X, reg, K, top_k, dict(zip(pll_names, losses, strict=False)), models, probs, solver, bar,
                          warm_starts, student_stop)
    if bar is not None:
        bar.close()

    coverage = topk_coverage(probs[TEACHER.name], y_true, top_k)
    metrics = metrics_per_model(models, probs, y, y_true, X_test, y_test, coverage)
    config = {"reg": reg, "rounds": rounds, "pll": bool(pll), "top_k": top_k,
              "pll_loss": pll_loss if isinstance(pll_loss, str) else list(pll_loss), "temperature": temperature,
              "mix": mix, "fit_intercept": bool(fit_intercept), "n_classes": K, "tol": tol, "stop": stop,
              "max_iter": max_iter, "n_train": n, "n_features": X.shape[1]}
    return DistillResult(models=models, metrics=metrics, train_probs=probs, y=y, y_true=y_true, config=config)
