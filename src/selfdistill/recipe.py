"""The authors' SGD recipe as a trainer: a labelled baseline protocol beside the exact solver.

The paper's probes were trained (Hyeonsu-Jeong/SelfPLL, ``train_linear.py``) by minibatch SGD on the
same objective the exact solver minimises, (1/n) sum_i CE(t_i, softmax(W x_i)) + (reg/2) ||W||^2,
with the weight decay as reg:

- a bias-free linear layer, initialised U(-1/sqrt(d), 1/sqrt(d)) (PyTorch's default);
- SGD with momentum 0.9 (PyTorch's rule: b <- 0.9 b + g, W <- W - lr b, g including reg W),
  batch 128, reshuffled every epoch, 200 epochs, the learning rate times 0.98 after every epoch
  (lr 0.05 for CIFAR-100);
- the teacher trains on the given labels; SD student t on the softmax outputs of student t-1 from
  a fresh initialisation; the PLL student on the teacher's top-2 labels, from the teacher's weights;
- every run draws its initialisation and its minibatch order from the same seed, as their
  scripts (one process per model, one manual seed) do.

Two checkpoint rules (``select``):

- ``"last-epoch"``: every model is its last epoch; no test label is read (the honest protocol);
- ``"best-test"``: after every epoch the model is scored on the test set and the epoch with the best
  test accuracy is kept (``best.ckpt``): a student distils *that* checkpoint, the PLL student starts
  from it, and the accuracy reported is the best test accuracy over the epochs, as the authors' code
  does. It chooses on test labels: reproducing the published protocol only, to measure how much
  that inflates, and labelled so everywhere.

The gradient of each loss comes from :mod:`selfdistill.losses` (the same classes the exact solver
uses), in float32 like the authors' GPU runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .losses import GCE, Candidate, CrossEntropy, softmax

__all__ = ["RECIPE_DEFAULTS", "RecipeFit", "recipe_distill", "recipe_distills", "recipe_settings", "sgd_recipe_fit",
           "sgd_recipe_fits"]

#: The recipe's settings as the authors ran it on CIFAR-100 (weight decay = the chain's reg).
RECIPE_DEFAULTS = {"select": "last-epoch", "epochs": 200, "batch_size": 128, "lr": 0.05, "momentum": 0.9,
                   "lr_decay": 0.98}
_SELECT = ("last-epoch", "best-test")


def recipe_settings(**overrides) -> dict:
    """:data:`RECIPE_DEFAULTS` with ``overrides``, checked (a ValueError names a bad one).

    Parameters
    ----------
    **overrides
        Any of select, epochs, batch_size, lr, momentum, lr_decay.

    Returns
    -------
    dict
        All six settings.

    Examples
    --------
    >>> recipe_settings(epochs=5)["epochs"], recipe_settings()["select"]
    (5, 'last-epoch')
    """
    unknown = sorted(set(overrides) - set(RECIPE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown recipe setting(s) {unknown}; expected some of {list(RECIPE_DEFAULTS)}")
    s = {**RECIPE_DEFAULTS, **overrides}
    if s["select"] not in _SELECT:
        raise ValueError(f"select must be one of {list(_SELECT)}, got {s['select']!r}")
    for key in ("epochs", "batch_size"):
        if isinstance(s[key], bool) or not isinstance(s[key], (int, np.integer)) or s[key] < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {s[key]!r}")
    if not 0 < s["lr"] < np.inf:
        raise ValueError(f"lr must be a number > 0, got {s['lr']!r}")
    if not 0 <= s["momentum"] < 1:
        raise ValueError(f"momentum must be in [0, 1), got {s['momentum']!r}")
    if not 0 < s["lr_decay"] <= 1:
        raise ValueError(f"lr_decay must be in (0, 1], got {s['lr_decay']!r}")
    return s


@dataclass
class RecipeFit:
    """One model trained by the recipe.

    Parameters
    ----------
    W : (K, d) float64 array
        The kept checkpoint's weights.
    epoch : int
        Its epoch (1-based; the last one with ``select="last-epoch"``).
    test_acc : list of float
        Test accuracy after each epoch (``select="best-test"`` only; else empty).
    seconds : float
        Wall time.
    """

    W: np.ndarray
    epoch: int
    test_acc: list = field(default_factory=list)
    seconds: float = 0.0


def _batch_loss(kind, T, idx):
    """The loss of rows ``idx`` of every problem (sum over them), for T of shape (B, n) labels or
    (B, n, K) targets: one loss over the B * m stacked rows (each loss is a sum over rows)."""
    Tb = T[:, idx]
    Tb = Tb.reshape(-1) if Tb.ndim == 2 else Tb.reshape(-1, Tb.shape[-1])
    if kind == "ce":
        return CrossEntropy(Tb)
    return (GCE if kind == "gce" else Candidate)(Tb)


def _stack_targets(targets, B):
    """B target arrays as one (B, n) int or (B, n, K) float32 array (checked to agree in shape)."""
    arrs = [np.asarray(t) for t in targets]
    if len(arrs) != B or len({a.shape for a in arrs}) != 1:
        raise ValueError(f"targets must be {B} arrays of one shape, got shapes {[a.shape for a in arrs]}")
    if arrs[0].ndim == 1:
        return np.stack(arrs)
    return np.stack([a.astype(np.float32, copy=False) for a in arrs])


def sgd_recipe_fit(X, targets, reg, *, n_classes, loss="ce", init=None, seed=0, settings=None, X_test=None,
                   y_test=None) -> RecipeFit:
    """Train one probe by the authors' recipe; keep the last epoch or the best-test one.

    Parameters
    ----------
    X : (n, d) float array
        Training features (used in float32).
    targets : (n,) int labels or (n, K) soft targets (``loss="ce"``), or (n, K) candidate weights
        (``loss="gce"`` / ``"candidate"``, rows summing to 1).
    reg : float
        The weight decay (the exact objective's reg).
    n_classes : int
        K.
    loss : {"ce", "gce", "candidate"}
        Cross-entropy to the targets (labels, soft outputs or the uniform top-k targets), or a
        partial-label loss over the candidates.
    init : (K, d) array or None
        Starting weights (the PLL student: its teacher's); None draws U(-1/sqrt(d), 1/sqrt(d)).
    seed : int
        Seeds the initialisation and the minibatch order.
    settings : dict or None
        :func:`recipe_settings` (None: the defaults).
    X_test, y_test : arrays or None
        The test set, read only with ``select="best-test"`` (then required).

    Returns
    -------
    RecipeFit

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); y = np.argmax(X[:, :3], axis=1)
    >>> fit = sgd_recipe_fit(X, y, 1e-3, n_classes=3, settings=recipe_settings(epochs=20))
    >>> fit.W.shape, fit.epoch, float(np.mean(np.argmax(X @ fit.W.T, 1) == y)) > 0.9
    ((3, 5), 20, True)
    """
    return sgd_recipe_fits(X, [targets], reg, n_classes=n_classes, loss=loss, init=None if init is None else [init],
                           seed=seed, settings=settings, X_test=X_test, y_test=y_test)[0]


def sgd_recipe_fits(X, targets, reg, *, n_classes, loss="ce", init=None, seed=0, settings=None, X_test=None,
                    y_test=None) -> list[RecipeFit]:
    """Train B probes on one X by the recipe in lockstep: one seed, so one initialisation draw and one
    minibatch order serve all of them, and each step's two products cover all B (``X_b W^T`` with
    the B weight matrices side by side). Each answer is :func:`sgd_recipe_fit`'s for its targets, up
    to float32 round-off of the wider products.

    Parameters
    ----------
    X : (n, d) float array
        Training features (used in float32).
    targets : sequence of B arrays
        Each as :func:`sgd_recipe_fit`'s ``targets``, all of one shape.
    reg, n_classes, loss, seed, settings, X_test, y_test
        As :func:`sgd_recipe_fit`, shared by the B problems.
    init : sequence of B (K, d) arrays or None
        Starting weights per problem; None draws one initialisation from ``seed`` for all.

    Returns
    -------
    list of B RecipeFit

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); y = np.argmax(X[:, :3], axis=1)
    >>> fits = sgd_recipe_fits(X, [y, (y + 1) % 3], 1e-3, n_classes=3, settings=recipe_settings(epochs=5))
    >>> one = sgd_recipe_fit(X, (y + 1) % 3, 1e-3, n_classes=3, settings=recipe_settings(epochs=5))
    >>> len(fits), bool(np.allclose(fits[1].W, one.W, atol=1e-5))
    (2, True)
    """
    s = recipe_settings() if settings is None else settings
    best_test = s["select"] == "best-test"
    if best_test and (X_test is None or y_test is None):
        raise ValueError("select='best-test' scores every epoch on the test set: pass X_test and y_test")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X32.shape
    B, K = len(targets), n_classes
    T = _stack_targets(targets, B)
    if init is None:
        bound = 1.0 / np.sqrt(d)
        W = np.repeat(rng.uniform(-bound, bound, size=(1, K, d)).astype(np.float32), B, axis=0)
    else:
        if len(init) != B:
            raise ValueError(f"init must hold {B} weight arrays (one per problem), got {len(init)}")
        W = np.stack([np.asarray(w, dtype=np.float32).reshape(K, d) for w in init])
    Xt = None if not best_test else np.ascontiguousarray(X_test, dtype=np.float32)
    buf = np.zeros_like(W)
    wd, mom, lr = np.float32(reg), np.float32(s["momentum"]), float(s["lr"])
    best = [(-1.0, W[b].copy(), 0) for b in range(B)]
    curves: list[list[float]] = [[] for _ in range(B)]
    for epoch in range(1, s["epochs"] + 1):
        order = rng.permutation(n)
        step = np.float32(lr)
        for start in range(0, n, s["batch_size"]):
            idx = order[start : start + s["batch_size"]]
            m = idx.size
            Xb = X32[idx]
            Z = (Xb @ W.reshape(B * K, d).T).reshape(m, B, K).transpose(1, 0, 2).reshape(B * m, K)
            _, G = _batch_loss(loss, T, idx).value_grad(Z)
            G = np.asarray(G, dtype=np.float32).reshape(B, m, K).transpose(0, 2, 1).reshape(B * K, m)
            g = ((G @ Xb) / np.float32(m)).reshape(B, K, d) + wd * W
            buf = g if epoch == 1 and start == 0 else mom * buf + g
            W = W - step * buf
        lr *= s["lr_decay"]
        if best_test:
            pred = np.argmax((Xt @ W.reshape(B * K, d).T).reshape(-1, B, K), axis=2)
            for b in range(B):
                acc = float(np.mean(pred[:, b] == y_test))
                curves[b].append(acc)
                if acc > best[b][0]:  # the authors' is_best: the first epoch of the best accuracy
                    best[b] = (acc, W[b].copy(), epoch)
    seconds = (time.perf_counter() - t0) / B
    if best_test:
        return [RecipeFit(W=bw.astype(np.float64), epoch=be, test_acc=curves[b], seconds=seconds)
                for b, (_, bw, be) in enumerate(best)]
    return [RecipeFit(W=W[b].astype(np.float64), epoch=s["epochs"], seconds=seconds) for b in range(B)]


def _objective(X, Z, W, T, reg):
    """The exact objective (1/n) sum_i CE(t_i, softmax(W x_i)) + (reg/2) ||W||^2 and its max-abs gradient,
    from the logits Z = X W^T (float64); T labels (n,) or soft targets (n, K)."""
    value, G = CrossEntropy(np.asarray(T) if np.ndim(T) == 1 else np.asarray(T, dtype=np.float64)).value_grad(Z)
    n = Z.shape[0]
    f = value / n + 0.5 * reg * float(np.vdot(W, W))
    g = (G.T @ X) / n + reg * W
    return float(f), float(np.abs(g).max())


def recipe_distill(X, y, *, reg, rounds, pll_losses, top_k, n_classes, seed, settings, X_test, y_test, y_true=None):
    """The chain trained by the recipe: teacher, ``rounds`` SD rounds, one PLL student per loss.

    The same models and names as :func:`selfdistill.distill` (``round t``, ``pll-<loss>``), each
    a :class:`selfdistill.LinearProbe` (``loss_`` ``"sgd-recipe"``, ``n_iter_`` the kept epoch,
    ``objective_`` and ``grad_norm_`` the exact objective's at its weights, ``converged_`` False:
    no convergence test) in a :class:`selfdistill.DistillResult`. With ``select="best-test"`` each
    student learns from its teacher's best-test checkpoint (test labels choose: labelled).

    Parameters
    ----------
    X, y : (n, d) features and (n,) given labels.
    reg : float, the weight decay.
    rounds : int, SD rounds after the teacher.
    pll_losses : sequence of "uniform", "candidate", "gce" (may be empty).
    top_k : int, the candidate-set size.
    n_classes : int, K.
    seed : int, the seed of every run's initialisation and minibatch order.
    settings : dict, :func:`recipe_settings`.
    X_test, y_test : the test set (scored for the metrics; read by the training only with "best-test").
    y_true : optional clean training labels (label-correction metrics).

    Returns
    -------
    DistillResult
    """
    return recipe_distills(X, [y], reg=reg, rounds=rounds, pll_losses=pll_losses, top_k=top_k, n_classes=n_classes,
                           seed=seed, settings=settings, X_test=X_test, y_test=y_test, y_true=y_true)[0]


def recipe_distills(X, ys, *, reg, rounds, pll_losses, top_k, n_classes, seed, settings, X_test, y_test,
                    y_true=None):
    """:func:`recipe_distill` for B given-label vectors over one X and one seed, the B chains in
    lockstep (all teachers, then all round-1 students, ...; :func:`sgd_recipe_fits`).

    Parameters
    ----------
    X : (n, d) features.
    ys : sequence of B (n,) given-label vectors (e.g. one per noise kind and rate).
    reg, rounds, pll_losses, top_k, n_classes, seed, settings, X_test, y_test, y_true
        As :func:`recipe_distill`, shared by the B chains.

    Returns
    -------
    list of B DistillResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); y = np.argmax(X[:, :3], axis=1)
    >>> res = recipe_distills(X, [y, (y + 1) % 3], reg=1e-3, rounds=1, pll_losses=(), top_k=2, n_classes=3, seed=0,
    ...                       settings=recipe_settings(epochs=3), X_test=X, y_test=y)
    >>> [list(r.models) for r in res]
    [['round 0', 'round 1'], ['round 0', 'round 1']]
    """
    from .distill import DistillResult, metrics_per_model, pll_model_names
    from .metrics import topk_coverage
    from .probe import LinearProbe
    from .targets import refine_targets

    K, B = n_classes, len(ys)
    test = dict(X_test=X_test, y_test=y_test) if settings["select"] == "best-test" else {}
    X64 = np.asarray(X, dtype=np.float64)
    models: list[dict] = [{} for _ in range(B)]
    probs: list[dict] = [{} for _ in range(B)]

    def keep(name, fits, Ts, loss):
        for b, (fit, T) in enumerate(zip(fits, Ts, strict=True)):
            Z = X64 @ fit.W.T  # the logits serve the objective and the outputs
            f, g = _objective(X64, Z, fit.W, T, reg) if loss != "partial" else (float("nan"), float("nan"))
            models[b][name] = LinearProbe(coef_=fit.W, intercept_=np.zeros(K), reg_=reg, loss_="sgd-recipe",
                                          n_iter_=fit.epoch, objective_=f, grad_norm_=g, converged_=False,
                                          seconds_=fit.seconds)
            probs[b][name] = softmax(Z)

    Ts = [np.asarray(y) for y in ys]
    for t in range(rounds + 1):
        keep(f"round {t}", sgd_recipe_fits(X, Ts, reg, n_classes=K, seed=seed, settings=settings, **test), Ts, "ce")
        Ts = [p[f"round {t}"] for p in probs]
    if pll_losses:
        T_pll = [refine_targets(p["round 0"], "topk", top_k=top_k) for p in probs]
        init = [m["round 0"].coef_ for m in models]
        for name, loss in zip(pll_model_names(tuple(pll_losses)), pll_losses, strict=True):
            kind = "ce" if loss == "uniform" else loss
            fits = sgd_recipe_fits(X, T_pll, reg, n_classes=K, loss=kind, init=init, seed=seed, settings=settings,
                                   **test)
            keep(name, fits, T_pll, "ce" if loss == "uniform" else "partial")
    config = {"reg": reg, "rounds": rounds, "pll": bool(pll_losses), "top_k": top_k,
              "pll_loss": list(pll_losses), "n_classes": K, "trainer": "sgd-recipe", "recipe": dict(settings),
              "seed": seed, "n_train": int(X.shape[0]), "n_features": int(X.shape[1])}
    out = []
    for b in range(B):
        coverage = topk_coverage(probs[b]["round 0"], y_true, top_k)
        metrics = metrics_per_model(models[b], probs[b], ys[b], y_true, X_test, y_test, coverage)
        out.append(DistillResult(models=models[b], metrics=metrics, train_probs=probs[b], y=ys[b], y_true=y_true,
                                 config=dict(config)))
    return out
