"""Hostile input is refused by name, before any work: sparse or complex X, absurd labels, mix, rounds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from selfdistill import distill, fit_linear_probe, refine_targets

X = np.random.default_rng(0).normal(size=(30, 4))
Y = np.arange(30) % 3


@pytest.mark.parametrize("fit", [lambda X, y: fit_linear_probe(X, y, 1e-2),
                                 lambda X, y: distill(X, y, reg=1e-2, rounds=1, pll=False)])
def test_sparse_and_complex_features_are_refused_by_name(fit):
    with pytest.raises(ValueError, match=r"X is a scipy.sparse csr_matrix of shape \(30, 4\).*X.toarray\(\)"):
        fit(sp.csr_matrix(X), Y)
    with pytest.raises(ValueError, match="X must be real, got a complex array"):
        fit(X + 1j, Y)


def test_a_huge_label_is_named_not_wrapped_around():
    y = np.r_[Y[:-1].astype(float), 1e20]
    with pytest.raises(ValueError, match=r"out-of-range value 1e\+20 at index 29"):
        fit_linear_probe(X, y, 1e-2)


def test_mix_beyond_its_bound_names_mix_before_any_fit():
    P = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"mix must be <= 1e\+06.*got mix=10000000000.0"):
        refine_targets(P, "soft", mix=1e10, given=[0, 1])
    with pytest.raises(ValueError, match="mix must be <= "):
        distill(X, Y, reg=1e-2, rounds=1, mix=1e10, pll=False)
    assert refine_targets(P, "soft", mix=2.0, given=[0, 1]).sum(axis=1) == pytest.approx([1, 1])


def test_rounds_beyond_memory_are_refused_with_the_estimate():
    with pytest.raises(ValueError, match=r"rounds: a chain of 1,000,000,002 models .* would need about [\d,.]+ GiB"):
        distill(X, Y, reg=1e-2, rounds=10**9)


def test_theory_with_a_billion_points_is_refused_before_anything_is_written(tmp_path, capsys):
    from selfdistill.cli import main

    assert main(["theory", "--per-class", "100000000", "-q", "-o", str(tmp_path / "th")]) == 2
    err = capsys.readouterr().err
    assert "per_class:" in err and "GiB" in err and "Traceback" not in err
    assert not (tmp_path / "th").exists()
