"""SelfDistillationClassifier: the scikit-learn face of :func:`selfdistill.distill`."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import PARAMS, Boolean, Integer, OneOf, Real, validate_params
from .distill import PLL_LOSSES, distill, pll_model_names
from .model_selection import reg_path
from .probe import softmax
from .targets import MAX_MIX

__all__ = ["SelfDistillationClassifier"]


class SelfDistillationClassifier(ClassifierMixin, BaseEstimator):
    """A linear probe trained by self-distillation (or a PLL student) on the labels it is given.

    ``fit(X, y)`` runs the round chain of :func:`selfdistill.distill` on (X, y): a teacher on
    one-hot y, ``rounds`` SD rounds each trained on the previous round's soft outputs, and (for
    method="pll") one student on the teacher's top-k labels. The classifier keeps the final model:
    round ``rounds`` for method="sd", the PLL student for method="pll".

    Parameters
    ----------
    reg : float or "auto", default 1e-3
        L2 strength of every probe (the objective is (1/n) sum CE + (reg/2)||W||^2;
        scikit-learn's C = 1/(n reg)). Tune it like C (e.g. GridSearchCV), or ``"auto"``: the
        pipeline's rule (``selfdistill run``'s default), the chain run down the reg grid on a
        stratified 80% of the given labels and the final model's reg chosen by its accuracy on
        the other 20% of the given labels (:func:`selfdistill.model_selection.reg_path`; no other
        label is ever used).
    rounds : int, default 4
        SD rounds after the teacher (0: plain regularised softmax regression).
    method : {"sd", "pll"}, default "sd"
        Keep the last SD round, or train one PLL student on the teacher's top-k candidate sets.
    top_k : int, default 2
        Candidate-set size of the PLL student (2 <= top_k < n_classes).
    pll_loss : {"uniform", "candidate", "gce"}, default "uniform"
        The PLL student's loss (see :func:`selfdistill.distill`).
    temperature : float, default 1.0
        Softmax temperature of the SD targets.
    mix : float, default 1.0
        xi in T = xi * teacher + (1 - xi) * one_hot(y) for the SD rounds.
    fit_intercept : bool, default False
        Fit a bias per class (the paper's probe has none).
    tol : float, default 1e-8
        Solver tolerance on the gradient.
    max_iter : int, optional
        Newton iteration cap of the solver (None: its default).

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
        The label values seen in fit (any hashable, sortable values).
    n_features_in_ : int
        d.
    models_ : dict of str to LinearProbe
        Name -> fitted probe for every model of the chain ("round 0"... and "pll-<loss>").
    final_model_ : str
        The name of the model used to predict.
    result_ : DistillResult
        Metrics, label_issues(), corrected_labels() on the training set; those label indices
        refer to positions in classes_.
    coef_ : ndarray, shape (K, d)
        The final model's weights.
    intercept_ : ndarray, shape (K,)
        The final model's biases (zeros without ``fit_intercept``).
    n_iter_ : int
        The final model's Newton iterations.
    reg_ : float
        The reg the chain was fitted with (``reg`` itself, or the one ``"auto"`` chose).
    reg_scores_ : dict of float to float or None
        With ``reg="auto"``: reg -> the final model's accuracy on the held-out given labels.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
    >>> y = np.repeat(["cat", "dog", "owl"], 10)
    >>> clf = SelfDistillationClassifier(rounds=2).fit(X, y)
    >>> clf.final_model_, sorted(clf.models_)
    ('round 2', ['round 0', 'round 1', 'round 2'])
    >>> clf.predict(np.eye(3))
    array(['cat', 'dog', 'owl'], dtype='<U3')
    """

    #: scikit-learn's convention: each parameter and its constraint (a list: any of them), checked
    #: when fit starts (:meth:`_validate_params`), with the package's constraint types and messages.
    #: top_k's bound by the class count (top_k < K for method="pll") and mix's are distill's.
    _parameter_constraints: dict = {
        "reg": [OneOf(("auto",)), PARAMS["reg"]],
        "rounds": PARAMS["rounds"],
        "method": OneOf(("sd", "pll")),
        "top_k": Integer(1),
        "pll_loss": OneOf(PLL_LOSSES),
        "temperature": PARAMS["temperature"],
        "mix": Real(0.0, MAX_MIX),
        "fit_intercept": Boolean(),
        "tol": PARAMS["tol"],
        "max_iter": PARAMS["max_iter"],
    }

    def __init__(
        self,
        reg: float = 1e-3,
        rounds: int = 4,
        method: str = "sd",
        top_k: int = 2,
        pll_loss: str = "uniform",
        temperature: float = 1.0,
        mix: float = 1.0,
        fit_intercept: bool = False,
        tol: float = 1e-8,
        max_iter: int | None = None,
    ) -> None:
        self.reg = reg
        self.rounds = rounds
        self.method = method
        self.top_k = top_k
        self.pll_loss = pll_loss
        self.temperature = temperature
        self.mix = mix
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: ArrayLike, y: ArrayLike) -> SelfDistillationClassifier:
        """Run the self-distillation chain on (X, y) and keep the final model.

        The teacher is trained on one-hot y, each SD round on the previous round's soft outputs,
        the PLL student (``method="pll"``) on the teacher's top-k candidate sets.

        Parameters
        ----------
        X : array-like of float, shape (n, d)
            Training features.
        y : array-like, shape (n,)
            The given (possibly noisy) labels: any hashable, sortable values, at least 2 classes
            (3 for ``method="pll"``).

        Returns
        -------
        self : SelfDistillationClassifier
            The fitted classifier.

        Raises
        ------
        ValueError
            Unknown ``method``; invalid X or y; fewer than 2 classes (3 for ``"pll"``); invalid
            hyper-parameters (as :func:`selfdistill.distill`).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
        >>> clf = SelfDistillationClassifier(method="pll").fit(X, np.repeat([0, 1, 2], 10))
        >>> clf.final_model_, clf.coef_.shape
        ('pll-uniform', (3, 3))
        """
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(
                f"y must hold at least 2 classes to train a classifier, got one class {self.classes_.tolist()}"
            )
        pll = self.method == "pll"
        if pll and K < 3:
            raise ValueError(f"method='pll' needs at least 3 classes (top_k < n_classes), got {K} classes")
        chain = dict(rounds=self.rounds if not pll else 0, pll=pll, top_k=self.top_k, pll_loss=self.pll_loss,
                     temperature=self.temperature, mix=self.mix, fit_intercept=self.fit_intercept, tol=self.tol,
                     max_iter=self.max_iter)
        final = pll_model_names(self.pll_loss)[0] if pll else f"round {self.rounds}"
        self.reg_, self.reg_scores_ = self.reg, None
        if isinstance(self.reg, str):  # "auto"
            best, scores, _ = reg_path(X, y_enc, n_classes=K, **chain)
            self.reg_, self.reg_scores_ = best[final], scores[final]
        self.result_ = distill(
            X,
            y_enc,
            reg=self.reg_,
            rounds=self.rounds if not pll else 0,
            pll=pll,
            top_k=self.top_k,
            pll_loss=self.pll_loss,
            temperature=self.temperature,
            mix=self.mix,
            fit_intercept=self.fit_intercept,
            n_classes=K,
            tol=self.tol,
            max_iter=self.max_iter,
        )
        self.models_ = self.result_.models
        self.final_model_ = final
        final = self.models_[self.final_model_]
        self.coef_, self.intercept_ = final.coef_, final.intercept_
        self.n_iter_ = final.n_iter_
        return self

    def _validate_params(self) -> None:
        """Check the parameters against :attr:`_parameter_constraints` (the messages name the
        parameter, its value and what was expected, as the package's functions do)."""
        validate_params(self._parameter_constraints, **self.get_params(deep=False))

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_.T + self.intercept_

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Return the logits z = W x + b of the final model.

        Parameters
        ----------
        X : array-like of float, shape (m, d)
            Features.

        Returns
        -------
        scores : ndarray of float64, shape (m, K), or (m,) when K = 2
            The logits, columns in the order of ``classes_``; for K = 2 the scikit-learn
            convention, z_1 - z_0.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
        >>> clf = SelfDistillationClassifier().fit(X, np.repeat([0, 1, 2], 10))
        >>> clf.decision_function(np.eye(3)).argmax(axis=1)
        array([0, 1, 2])
        """
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Return the final model's class probabilities softmax(W x + b).

        Parameters
        ----------
        X : array-like of float, shape (m, d)
            Features.

        Returns
        -------
        probs : ndarray of float64, shape (m, K)
            Rows sum to 1; columns in the order of ``classes_``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
        >>> clf = SelfDistillationClassifier().fit(X, np.repeat([0, 1, 2], 10))
        >>> P = clf.predict_proba(np.eye(3))
        >>> P.shape, bool(np.allclose(P.sum(axis=1), 1.0)), P.argmax(axis=1)
        ((3, 3), True, array([0, 1, 2]))
        """
        return softmax(self._logits(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict the final model's most probable class of every row of X.

        Parameters
        ----------
        X : array-like of float, shape (m, d)
            Features.

        Returns
        -------
        labels : ndarray, shape (m,)
            Values from ``classes_``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
        >>> clf = SelfDistillationClassifier().fit(X, np.repeat(["cat", "dog", "owl"], 10))
        >>> clf.predict(np.eye(3)).tolist()
        ['cat', 'dog', 'owl']
        """
        Z = self._logits(X)
        return self.classes_[np.argmax(Z, axis=1)]

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Return the accuracy of :meth:`predict` on (X, y), scikit-learn's ``ClassifierMixin.score``.

        Parameters
        ----------
        X : array-like of float, shape (m, d)
            Features.
        y : array-like, shape (m,)
            True labels (values of ``classes_``).
        sample_weight : array-like of float, shape (m,), optional
            Weights of the points; None weighs them equally.

        Returns
        -------
        accuracy : float
            The (weighted) fraction of points whose prediction equals ``y``, in [0, 1].

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
        >>> clf = SelfDistillationClassifier().fit(X, np.repeat([0, 1, 2], 10))
        >>> clf.score(np.eye(3), [0, 1, 1])
        0.6666666666666666
        """
        return super().score(X, y, sample_weight=sample_weight)
