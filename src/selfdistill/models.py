"""Model identity: which model of a task a name means (a round of the chain, a PLL student, a baseline).

:class:`ModelId` is the value the code reasons with; its display name (``"round 3"``,
``"pll-gce"``, ``"label smoothing 0.1"``) is what results hold: the ``model`` of every metrics
row, the SQLite store, ``results.csv``, the figures and the CLI. Names are made by
:attr:`ModelId.name` and read back by :meth:`ModelId.parse`, here and nowhere else.

Display names, by kind:

* ``"round"`` -- ``"round <t>"``: the teacher ``"round 0"``, then the SD rounds 1..R;
* ``"pll"`` -- ``"pll-<loss>"``, one PLL student per loss (``"pll"`` alone: the single student
  of results written before the losses were named);
* ``"baseline"`` -- :data:`BASELINE_NAMES` (label smoothing's name carries its ``eps``:
  ``"label smoothing 0.1"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["ModelId", "MODEL_KINDS", "BASELINE_NAMES", "TEACHER", "round_index"]

#: The kinds of model of a task, in display order.
MODEL_KINDS = ("round", "pll", "baseline")
#: Baseline -> its display name (label smoothing's is followed by its eps).
BASELINE_NAMES = {
    "tuned_teacher": "teacher (tuned reg)",
    "label_smoothing": "label smoothing",
    "cleanlab": "cleanlab filter",
    "born_again": "born-again ensemble",
}

_ROUND_RE = re.compile(r"round (0|[1-9][0-9]*)")
_PLL_RE = re.compile(r"pll(?:-([A-Za-z0-9_]+))?")
_SMOOTHING_RE = re.compile(r"label smoothing (\S+)")
_FIXED_BASELINES = {v: k for k, v in BASELINE_NAMES.items() if k != "label_smoothing"}
_FORMS = ("'round <t>' (t = 0, 1, ...), 'pll-<loss>', or a baseline's name ("
          + ", ".join(repr(v + (" <eps>" if k == "label_smoothing" else "")) for k, v in BASELINE_NAMES.items())
          + ")")


@dataclass(frozen=True)
class ModelId:
    """One model of a task: a round of the chain, a PLL student or a baseline.

    Build one with :meth:`round_`, :meth:`pll`, :meth:`baseline` or :meth:`parse`; the fields
    that do not apply to the kind are None. Label smoothing's ``eps`` is kept as its name
    shows it (``f"{eps:g}"``), so ``ModelId.parse(m.name) == m`` for every ``m``.

    Parameters
    ----------
    kind : {"round", "pll", "baseline"}
        What the model is.
    round : int or None, default None
        For ``"round"``: t >= 0 (0 is the teacher).
    loss : str or None, default None
        For ``"pll"``: the student's PLL loss (None: the unnamed single student, ``"pll"``).
    key : str or None, default None
        For ``"baseline"``: which, a key of :data:`BASELINE_NAMES` (``"tuned_teacher"``, ...).
    eps : float or None, default None
        For the ``"label_smoothing"`` baseline: its eps in (0, 1] (kept to the 6 digits its name shows).

    Raises
    ------
    ValueError
        For an unknown kind or baseline, or fields that do not fit the kind.

    Examples
    --------
    >>> ModelId.round_(3)
    ModelId(kind='round', round=3, loss=None, key=None, eps=None)
    >>> str(ModelId.pll("gce")), ModelId.baseline("label_smoothing", eps=0.2).name
    ('pll-gce', 'label smoothing 0.2')
    """

    kind: Literal["round", "pll", "baseline"]
    round: int | None = None
    loss: str | None = None
    key: str | None = None
    eps: float | None = None

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        fields = {"round": self.round, "loss": self.loss, "key": self.key, "eps": self.eps}
        allowed = {"round": ("round",), "pll": ("loss",), "baseline": ("key", "eps")}[self.kind]
        extra = [k for k, v in fields.items() if v is not None and k not in allowed]
        if extra:
            raise ValueError(f"a {self.kind!r} model has no {', '.join(extra)}")
        getattr(self, f"_check_{self.kind}")()

    def _check_round(self):
        t = self.round
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"round must be an integer >= 0, got {t!r}")

    def _check_pll(self):
        if self.loss is not None and not (isinstance(self.loss, str) and _PLL_RE.fullmatch(f"pll-{self.loss}")):
            raise ValueError(f"loss must be a name of letters, digits and '_', got {self.loss!r}")

    def _check_baseline(self):
        if self.key not in BASELINE_NAMES:
            raise ValueError(f"a baseline's key must be one of {tuple(BASELINE_NAMES)}, got {self.key!r}")
        if (self.key == "label_smoothing") != (self.eps is not None):
            raise ValueError("eps is given for the label_smoothing baseline, and for no other")
        if self.eps is not None:
            eps = self.eps
            if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and 0 < eps <= 1):
                raise ValueError(f"eps must be a number in (0, 1], got {eps!r}")
            object.__setattr__(self, "eps", float(f"{eps:g}"))  # as the name shows it

    @classmethod
    def round_(cls, t: int) -> ModelId:
        """Round ``t`` of the chain (0: the teacher).

        Parameters
        ----------
        t : int
            The round, >= 0.

        Returns
        -------
        ModelId
            Named ``"round <t>"``.

        Examples
        --------
        >>> ModelId.round_(0).name
        'round 0'
        """
        return cls("round", round=t)

    @classmethod
    def pll(cls, loss: str | None) -> ModelId:
        """The PLL student trained with ``loss``.

        Parameters
        ----------
        loss : str or None
            Its PLL loss (:data:`selfdistill.distill.PLL_LOSSES`); None for the unnamed student
            of older results.

        Returns
        -------
        ModelId
            Named ``"pll-<loss>"`` (``"pll"`` for None).

        Examples
        --------
        >>> ModelId.pll("uniform").name
        'pll-uniform'
        """
        return cls("pll", loss=loss)

    @classmethod
    def baseline(cls, name: str, eps: float | None = None) -> ModelId:
        """A baseline beside the chain (:mod:`selfdistill.experiments.baselines`).

        Parameters
        ----------
        name : str
            A key of :data:`BASELINE_NAMES` (``"tuned_teacher"``, ``"label_smoothing"``, ...).
        eps : float or None, default None
            Label smoothing's eps in (0, 1]; None for the other baselines.

        Returns
        -------
        ModelId
            Named by :data:`BASELINE_NAMES`.

        Examples
        --------
        >>> ModelId.baseline("born_again").name
        'born-again ensemble'
        """
        return cls("baseline", key=name, eps=eps)

    @classmethod
    def parse(cls, text: str) -> ModelId:
        """The model a display name means: the one place that reads a model name.

        Parameters
        ----------
        text : str
            A display name: ``"round <t>"``, ``"pll-<loss>"`` (or ``"pll"``), or a baseline's name.

        Returns
        -------
        ModelId
            The model, with ``ModelId.parse(text).name == text``.

        Raises
        ------
        ValueError
            When ``text`` is none of these forms (the message names it and the forms expected).

        Examples
        --------
        >>> ModelId.parse("round 3").round, ModelId.parse("pll-gce").loss
        (3, 'gce')
        >>> ModelId.parse("label smoothing 0.1")
        ModelId(kind='baseline', round=None, loss=None, key='label_smoothing', eps=0.1)
        >>> ModelId.parse("round three")
        Traceback (most recent call last):
        ...
        ValueError: not a model name: 'round three'; expected 'round <t>' (t = 0, 1, ...), ...
        """
        found = cls.try_parse(text)
        if found is None:
            raise ValueError(f"not a model name: {text!r}; expected {_FORMS}")
        return found

    @classmethod
    def try_parse(cls, text: object) -> ModelId | None:
        """As :meth:`parse`, but None for a text that is no model name (e.g. a name of other code).

        Parameters
        ----------
        text : object
            A display name, or anything else.

        Returns
        -------
        ModelId or None
            The model, or None.

        Examples
        --------
        >>> ModelId.try_parse("pll-uniform") == ModelId.pll("uniform"), ModelId.try_parse("round -1")
        (True, None)
        """
        if not isinstance(text, str):
            return None
        if m := _ROUND_RE.fullmatch(text):
            return cls.round_(int(m.group(1)))
        if m := _PLL_RE.fullmatch(text):
            return cls.pll(m.group(1))
        if text in _FIXED_BASELINES:
            return cls.baseline(_FIXED_BASELINES[text])
        return _smoothing(text)

    @property
    def name(self) -> str:
        """The display name: ``"round 3"``, ``"pll-gce"``, ``"teacher (tuned reg)"``, ...

        Returns
        -------
        str
            What results, files, figures and the CLI show.

        Examples
        --------
        >>> ModelId.round_(2).name, ModelId.pll(None).name
        ('round 2', 'pll')
        """
        if self.kind == "round":
            return f"round {self.round}"
        if self.kind == "pll":
            return "pll" if self.loss is None else f"pll-{self.loss}"
        text = BASELINE_NAMES[str(self.key)]
        return text if self.eps is None else f"{text} {self.eps:g}"

    def __str__(self) -> str:
        return self.name

    @property
    def is_teacher(self) -> bool:
        """Whether this is the teacher, round 0.

        Returns
        -------
        bool
            True for ``ModelId.round_(0)`` alone.

        Examples
        --------
        >>> ModelId.parse("round 0").is_teacher, ModelId.round_(1).is_teacher
        (True, False)
        """
        return self.kind == "round" and self.round == 0


def _smoothing(text):
    """The label smoothing baseline named ``text`` ("label smoothing <eps>", eps as :g shows it), or None."""
    m = _SMOOTHING_RE.fullmatch(text)
    if m is None:
        return None
    try:
        eps = float(m.group(1))
    except ValueError:
        return None
    if not (math.isfinite(eps) and 0 < eps <= 1) or f"{eps:g}" != m.group(1):
        return None
    return ModelId.baseline("label_smoothing", eps=eps)


#: The teacher, round 0 of every chain.
TEACHER = ModelId.round_(0)


def round_index(name: object) -> int | None:
    """The round t of a round's display name; None for any other name.

    Parameters
    ----------
    name : object
        A model's display name (a PLL student's, a baseline's, or any other text gives None).

    Returns
    -------
    int or None
        t of ``"round <t>"``, else None.

    Examples
    --------
    >>> round_index("round 10"), round_index("pll-gce"), round_index("my model")
    (10, None, None)
    """
    model = ModelId.try_parse(name)
    return model.round if model is not None and model.kind == "round" else None
