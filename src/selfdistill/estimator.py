"""SelfDistillationClassifier: the scikit-learn face of :func:`selfdistill.distill`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_choice
from .distill import distill
from .probe import softmax

__all__ = ["SelfDistillationClassifier"]


class SelfDistillationClassifier(ClassifierMixin, BaseEstimator):
    """A linear probe trained by self-distillation (or a PLL student) on the labels it is given.

    ``fit(X, y)`` runs the round chain of :func:`selfdistill.distill` on (X, y): a teacher on
    one-hot y, ``rounds`` SD rounds each trained on the previous round's soft outputs, and (for
    method="pll") one student on the teacher's top-k labels. The classifier keeps the final model:
    round ``rounds`` for method="sd", the PLL student for method="pll".

    Parameters
    ----------
    reg : float, default 1e-3. L2 strength of every probe (the objective is (1/n) sum CE +
        (reg/2)||W||^2; scikit-learn's C = 1/(n reg)). Tune it like C (e.g. GridSearchCV).
    rounds : int, default 4. SD rounds after the teacher (0: plain regularised softmax regression).
    method : "sd" or "pll".
    top_k : int, default 2. Candidate-set size of the PLL student (2 <= top_k < n_classes).
    pll_loss : "uniform", "candidate" or "gce" (see :func:`selfdistill.distill`).
    temperature : float, default 1. Softmax temperature of the SD targets.
    mix : float, default 1. xi in T = xi * teacher + (1 - xi) * one_hot(y) for the SD rounds.
    fit_intercept : bool, default False (the paper's probe has no bias).
    tol, max_iter : solver tolerance and Newton iteration cap.

    Attributes
    ----------
    classes_ : (K,) the label values seen in fit (any hashable, sortable values).
    n_features_in_ : d.
    models_ : dict name -> fitted LinearProbe for every round ("round 0"... and "pll").
    final_model_ : the name of the model used to predict.
    result_ : the DistillResult (metrics, label_issues(), corrected_labels() on the training set;
        those label indices refer to positions in classes_).
    coef_ (K, d), intercept_ (K,) : the final model's weights.   n_iter_ : its Newton iterations.
    """

    def __init__(
        self,
        reg=1e-3,
        rounds=4,
        method="sd",
        top_k=2,
        pll_loss="uniform",
        temperature=1.0,
        mix=1.0,
        fit_intercept=False,
        tol=1e-8,
        max_iter=None,
    ):
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

    def fit(self, X, y):
        """Run the chain on (X (n, d), y (n,)) and keep the final model. Returns self."""
        check_choice(self.method, "method", ("sd", "pll"))
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
        self.result_ = distill(
            X,
            y_enc,
            reg=self.reg,
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
        self.final_model_ = "pll" if pll else f"round {self.rounds}"
        final = self.models_[self.final_model_]
        self.coef_, self.intercept_ = final.coef_, final.intercept_
        self.n_iter_ = final.n_iter_
        return self

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_.T + self.intercept_

    def decision_function(self, X):
        """Logits of the final model, (m, K); for K = 2 the scikit-learn convention, z_1 - z_0, (m,)."""
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X):
        """softmax(W x + b) of the final model, (m, K), columns in the order of classes_."""
        return softmax(self._logits(X))

    def predict(self, X):
        """The most probable class of the final model (a value from classes_), (m,)."""
        Z = self._logits(X)
        return self.classes_[np.argmax(Z, axis=1)]
