"""Model identity (selfdistill.models): names made and read back in one place, round trip for every kind."""

from __future__ import annotations

import ast
import doctest
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpydoc.validate import validate

import selfdistill.models as models_module
from selfdistill.distill import PLL_LOSSES, distill, pll_model_names
from selfdistill.experiments import run_config
from selfdistill.experiments.baselines import BASELINES, baseline_model_name
from selfdistill.models import BASELINE_NAMES, TEACHER, ModelId, round_index

PKG = Path(__file__).resolve().parents[1] / "src" / "selfdistill"

NAMES = {
    "round 0": ModelId.round_(0),
    "round 3": ModelId.round_(3),
    "round 12": ModelId.round_(12),
    "pll-uniform": ModelId.pll("uniform"),
    "pll-candidate": ModelId.pll("candidate"),
    "pll-gce": ModelId.pll("gce"),
    "pll": ModelId.pll(None),  # the single student of results stored before the losses were named
    "teacher (tuned reg)": ModelId.baseline("tuned_teacher"),
    "label smoothing 0.1": ModelId.baseline("label_smoothing", eps=0.1),
    "label smoothing 0.25": ModelId.baseline("label_smoothing", eps=0.25),
    "label smoothing 1e-05": ModelId.baseline("label_smoothing", eps=1e-5),
    "cleanlab filter": ModelId.baseline("cleanlab"),
    "born-again ensemble": ModelId.baseline("born_again"),
}


@pytest.mark.parametrize("text", list(NAMES))
def test_parse_and_name_round_trip(text):
    model = ModelId.parse(text)
    assert model == NAMES[text]
    assert model.name == str(model) == text
    assert ModelId.parse(model.name) == model
    assert ModelId.try_parse(text) == model


def test_kinds_and_fields():
    assert [ModelId.parse(t).kind for t in ("round 2", "pll-gce", "cleanlab filter")] == ["round", "pll", "baseline"]
    assert ModelId.parse("round 2").round == 2 and ModelId.parse("pll-gce").loss == "gce"
    assert ModelId.parse("label smoothing 0.1").key == "label_smoothing"
    assert TEACHER == ModelId.parse("round 0") and TEACHER.is_teacher and not ModelId.round_(1).is_teacher
    assert {ModelId.parse("round 1"), ModelId.round_(1)} == {ModelId.round_(1)}  # hashable, equal by value


def test_eps_is_kept_as_the_name_shows_it():
    model = ModelId.baseline("label_smoothing", eps=0.123456789)
    assert model.name == "label smoothing 0.123457" and ModelId.parse(model.name) == model


@pytest.mark.parametrize("text", ["round", "round -1", "round 03", "round three", "round 1 ", "Round 1", "pll-",
                                  "pll-gce x", "PLL-gce", "pll_gce", "teacher", "label smoothing", "label smoothing x",
                                  "label smoothing 0.10", "label smoothing 0", "label smoothing 1.5",
                                  "label smoothing nan", "cleanlab", ""])
def test_a_bad_name_is_refused_naming_it_and_the_forms(text):
    with pytest.raises(ValueError, match=re.escape(repr(text)) + ".*expected 'round <t>'.*'pll-<loss>'"):
        ModelId.parse(text)
    assert ModelId.try_parse(text) is None


def test_parse_refuses_a_non_string():
    with pytest.raises(ValueError, match="not a model name: 3"):
        ModelId.parse(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("make, match", [
    (lambda: ModelId("model"), "kind must be one of"),  # type: ignore[arg-type]
    (lambda: ModelId("round"), "round must be an integer >= 0"),
    (lambda: ModelId.round_(-1), "round must be an integer >= 0"),
    (lambda: ModelId.round_(True), "round must be an integer >= 0"),
    (lambda: ModelId("pll", round=1, loss="gce"), "a 'pll' model has no round"),
    (lambda: ModelId.pll("two words"), "loss must be a name"),
    (lambda: ModelId.baseline("mixup"), "a baseline's key must be one of"),
    (lambda: ModelId.baseline("label_smoothing"), "eps is given for the label_smoothing baseline"),
    (lambda: ModelId.baseline("cleanlab", eps=0.1), "eps is given for the label_smoothing baseline"),
    (lambda: ModelId.baseline("label_smoothing", eps=0.0), r"eps must be a number in \(0, 1\]"),
])
def test_a_model_that_does_not_fit_its_kind_is_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_round_index_reads_rounds_only():
    assert [round_index(n) for n in ("round 0", "round 10", "pll-gce", "born-again ensemble", "anything", None)] \
        == [0, 10, None, None, None, None]


def test_every_baseline_has_a_model_name_and_keeps_today_s():
    assert list(BASELINES) == list(BASELINE_NAMES)
    assert [baseline_model_name(b) for b in BASELINES] == [
        "teacher (tuned reg)", "label smoothing 0.1", "cleanlab filter", "born-again ensemble"]
    with pytest.raises(ValueError, match="unknown baseline 'mixup'"):
        baseline_model_name("mixup")


def test_the_chain_s_and_the_config_s_names_are_model_ids():
    assert pll_model_names(PLL_LOSSES) == [ModelId.pll(loss).name for loss in PLL_LOSSES]
    cfg = run_config("block", rounds=2, pll_losses=["uniform", "gce"], baselines=list(BASELINES), label_smoothing=0.2)
    names = cfg.model_names()
    assert names == ["round 0", "round 1", "round 2", "pll-uniform", "pll-gce", "teacher (tuned reg)",
                     "label smoothing 0.2", "cleanlab filter", "born-again ensemble"]
    assert [ModelId.parse(n).kind for n in names] == ["round"] * 3 + ["pll"] * 2 + ["baseline"] * 4
    rng = np.random.default_rng(0)
    X = rng.normal(size=(45, 4))
    y = np.argmax(X[:, :3], axis=1)
    res = distill(X, y, reg=1e-2, rounds=2, pll_loss=("uniform", "gce"))
    assert list(res.models) == names[:5] == [m["model"] for m in res.metrics]


#: Ways the code used to read a model's name back; none may appear outside selfdistill/models.py.
_PARSING = [r'startswith\(\s*["\']round', r'startswith\(\s*["\']pll', r'"round \(\\d', r"split\(\s*['\"]-['\"]",
            r"model\.split\(", r'["\']round \w*["\']\s*in\s', r"_round_index"]


def test_no_module_but_models_parses_model_names():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "models.py" and path.parent == PKG:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            bad += [f"{path.relative_to(PKG)}:{i}: {line.strip()}" for p in _PARSING if re.search(p, line)]
    assert not bad, "\n".join(bad)


def _imported(path):
    """Modules ``path`` imports (relative ones as written, e.g. '.config'), anywhere in the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_import_circle_between_config_and_baselines():
    assert ".baselines" in _imported(PKG / "experiments" / "config.py")
    assert not {".config", "selfdistill.experiments.config"} & _imported(PKG / "experiments" / "baselines.py")
    assert not {n for n in _imported(PKG / "models.py") if n.startswith(".") or n.startswith("selfdistill")}
    for mod in ("selfdistill.experiments.config", "selfdistill.experiments.baselines", "selfdistill.models"):
        subprocess.run([sys.executable, "-c", f"import {mod}"], check=True, timeout=120)


def test_models_docstrings():
    result = doctest.testmod(models_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 5
    paths = ["selfdistill.models.round_index", "selfdistill.models.ModelId"] + [
        f"selfdistill.models.ModelId.{m}" for m in ("round_", "pll", "baseline", "parse", "try_parse", "name",
                                                    "is_teacher")]
    codes = ("GL08", "SS01", "SS03", "PR01", "PR02", "PR03", "PR10", "RT01", "EX01")
    errors = {p: [(c, m) for c, m in validate(p)["errors"] if c in codes] for p in paths}
    assert not any(errors.values()), errors
