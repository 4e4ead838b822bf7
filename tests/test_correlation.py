"""`selfdistill correlation FEATURES.npz`: class-mean correlation heat map ordered by cluster."""

from __future__ import annotations

import numpy as np
import pytest

from selfdistill.cli import main
from selfdistill.data import make_block_features, save_npz
from selfdistill.noise import class_clusters
from selfdistill.report.correlation import class_correlation, format_clusters, plot_class_correlation

SUPER = [0, 1, 0, 2, 1, 0]  # 6 classes in 3 superclasses, interleaved on purpose


@pytest.fixture(scope="module")
def ds():
    return make_block_features(6, 20, 0.6, 0.05, superclasses=SUPER, c_super=0.4, n_test_per_class=2, dim=200,
                               seed=0)


def test_clusters_are_the_superclasses_and_contiguous(ds):
    cc = class_correlation(ds, threshold=0.7)
    np.testing.assert_array_equal(cc.clusters, class_clusters(ds.X_train, ds.y_train, threshold=0.7))
    groups = {tuple(sorted(np.flatnonzero(cc.clusters == c))) for c in np.unique(cc.clusters)}
    assert groups == {(0, 2, 5), (1, 4), (3,)}
    ordered = cc.clusters[cc.order]
    assert sorted(cc.order.tolist()) == list(range(6))
    assert all(ordered[i] <= ordered[i + 1] for i in range(5))  # each cluster contiguous
    assert cc.corr.shape == (6, 6) and np.allclose(np.diag(cc.corr), 1.0)
    # same-superclass class means are more correlated than the others
    assert cc.corr[0, 2] > cc.corr[0, 1] + 0.2
    text = format_clusters(cc)
    assert "3 clusters" in text and "(2 with 2+ classes" in text
    assert "cluster 1: class_1 (1), class_4 (4)" in text
    assert "alone (labels never changed by class_cluster noise): class_3 (3)" in text


def test_heat_map_and_cli(tmp_path, ds, capsys):
    path = plot_class_correlation(class_correlation(ds), tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    feats = tmp_path / "f.npz"
    save_npz(feats, ds)
    out = tmp_path / "heat.png"
    assert main(["correlation", str(feats), "-o", str(out), "--threshold", "0.7"]) == 0
    text = capsys.readouterr().out
    assert "6 classes, 3 clusters at threshold 0.7" in text and f"Heat map: {out}" in text
    assert out.stat().st_size > 5000
    assert main(["correlation", str(tmp_path / "missing.npz")]) == 2
    assert "no such feature file" in capsys.readouterr().err
