import numpy as np
import pytest
from conftest import make_classes
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from selfdistill import SelfDistillationClassifier, distill

# Exempt: none. check_array_api_input is skipped by scikit-learn itself unless SCIPY_ARRAY_API is set
# (the estimator computes in NumPy and does not claim array-API support).


def test_check_estimator():
    results = check_estimator(SelfDistillationClassifier(), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}  # pandas is a test dependency, so the DataFrame check runs


def test_check_estimator_pll():
    results = check_estimator(SelfDistillationClassifier(method="pll", pll_loss="candidate"), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    # binary problems have no PLL student (top_k < K); every check on 3+ classes must pass
    assert all("2 classes" in msg or "3 classes" in msg for _, msg in failed), failed


def test_any_label_values_and_final_model():
    X, y = make_classes(n=200, d=6, K=3, seed=4)
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = SelfDistillationClassifier(reg=1e-3, rounds=2).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= set(labels)
    assert clf.final_model_ == "round 2" and set(clf.models_) == {"round 0", "round 1", "round 2"}
    ref = distill(X, y, reg=1e-3, rounds=2, pll=False)
    np.testing.assert_allclose(clf.predict_proba(X), ref.models["round 2"].predict_proba(X), atol=1e-10)
    assert clf.score(X, labels) == pytest.approx(np.mean(clf.predict(X) == labels))
    pll = SelfDistillationClassifier(reg=1e-3, method="pll").fit(X, labels)
    assert pll.final_model_ == "pll-uniform" and set(pll.models_) == {"round 0", "pll-uniform"}


def test_pipeline_and_grid_search():
    X, y = make_classes(n=240, d=6, K=3, seed=6)
    pipe = make_pipeline(StandardScaler(), SelfDistillationClassifier(rounds=1))
    grid = GridSearchCV(pipe, {"selfdistillationclassifier__reg": [1e-1, 1e-3]}, cv=3).fit(X, y)
    assert grid.best_params_["selfdistillationclassifier__reg"] in (1e-1, 1e-3)
    assert grid.score(X, y) > 0.8


def test_bad_parameters():
    X, y = make_classes(n=60, d=3, K=3)
    with pytest.raises(ValueError, match="method must be one of"):
        SelfDistillationClassifier(method="kd").fit(X, y)
    with pytest.raises(ValueError, match="reg must be > 0"):
        SelfDistillationClassifier(reg=-1).fit(X, y)
    with pytest.raises(ValueError, match="needs at least 3 classes"):
        SelfDistillationClassifier(method="pll").fit(X[y < 2], y[y < 2])
