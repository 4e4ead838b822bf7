"""``label_issues.html``: the flagged training images with their given and suggested labels.

One self-contained page (no network, no script): a grid of cards, most suspect first, one per flagged
training point: its image (a PNG embedded as a ``data:`` URI, upscaled by nearest neighbour so every
pixel stays a sharp square), its rank and training index, ``given: <class>`` and
``suggested: <class> (confidence)``; the label-quality score is the card's tooltip. Every string that
comes from the data (class names, captions, the title) is HTML-escaped, and the page's
Content-Security-Policy forbids scripts and any request outside the page itself.

The module knows nothing of feature files: the caller passes the flagged rows
(:meth:`selfdistill.label_issues.LabelIssues.records`), the class names and a function from a training
index to its image (``selfdistill label-issues`` builds it from the file's ``info``, see
:func:`selfdistill.data.images.source_images`).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._io import atomic_write_text
from .._validation import check_int

__all__ = ["DEFAULT_HTML_LIMIT", "image_data_uri", "render_label_issues_html", "write_label_issues_html"]

#: Cards on the page by default: the most suspect 100 flagged points.
DEFAULT_HTML_LIMIT = 100

#: Upscaled images are at least this many pixels on their longer side (nearest neighbour, integer factor).
_THUMB_PX = 112

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 1.5em; color: #222;
       background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 0.3em; } p.note { color: #444; margin: 0.2em 0 1em; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.card { margin: 0; padding: 8px; width: 140px; border: 1px solid #ccc; border-radius: 4px; background: #fafafa;
        font-size: 12px; line-height: 1.35; overflow-wrap: break-word; }
.card img { display: block; margin: 0 auto 6px; max-width: 100%; height: auto; image-rendering: pixelated;
            background: #000; }
.rank { color: #666; } .given b { color: #a11; } .suggested b { color: #161; } .src { color: #777; }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _to_uint8(image: Any) -> np.ndarray:
    """(h, w) or (h, w, 3) uint8 pixels: integers clipped to 0..255, floats in [0, 1] scaled by 255,
    other floats stretched from their own min..max (a constant image is black)."""
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or 0 in a.shape:
        raise ValueError(f"image must be a non-empty (h, w) grey or (h, w, 3) RGB array, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        return np.clip(a.astype(np.int64) * (255 if a.dtype == bool else 1), 0, 255).astype(np.uint8)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"image must hold numbers, got dtype {a.dtype}")
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.rint(a * 255.0).astype(np.uint8)


def image_data_uri(image: Any, *, scale: int | None = None) -> str:
    """A ``data:image/png;base64,...`` URI of an image, upscaled by nearest neighbour.

    Parameters
    ----------
    image : array_like, shape (h, w) or (h, w, 3)
        Grey or RGB pixels: uint8 as they are, other integers clipped to 0..255, booleans black and
        white, floats in [0, 1] scaled by 255, other floats stretched from their own min..max.
    scale : int, optional, keyword-only
        Each pixel becomes a ``scale`` x ``scale`` square; default: the smallest factor that makes the
        longer side at least 112 pixels (1 for larger images).

    Returns
    -------
    str
        The data URI of an opaque RGBA PNG (matplotlib's ``imsave``) of (h * scale, w * scale) pixels.

    Raises
    ------
    ValueError
        ``image`` is not a non-empty 2-D or (h, w, 3) array of numbers, or ``scale`` < 1.

    Examples
    --------
    >>> uri = image_data_uri(np.eye(8, dtype=np.uint8) * 255)
    >>> uri.startswith("data:image/png;base64,")
    True
    >>> import base64, io
    >>> from matplotlib.image import imread
    >>> imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).shape  # 8 x 8 upscaled 14 times
    (112, 112, 4)
    """
    from matplotlib.image import imsave

    pixels = _to_uint8(image)
    if scale is None:
        scale = max(1, math.ceil(_THUMB_PX / max(pixels.shape[:2])))
    scale = check_int(scale, "scale", low=1)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    imsave(buf, pixels, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _name(class_names: Sequence[str] | None, label: int) -> str:
    if class_names is None:
        return str(label)
    if not 0 <= label < len(class_names):
        raise ValueError(f"label {label} has no class name ({len(class_names)} class names)")
    return str(class_names[label])


def _card(rec: Mapping[str, Any], class_names, image_of, image_caption) -> str:
    e = html.escape
    i = int(rec["index"])
    given, suggested = _name(class_names, int(rec["given_label"])), _name(class_names, int(rec["suggested_label"]))
    rank = int(rec["rank"])
    lines = [f"<figure class='card' id='rank-{rank}' title='label quality score {float(rec['score']):.3f}'>",
             f"<img src='{image_data_uri(image_of(i))}' alt='training point {i}'>",
             f"<figcaption><div class='rank'>#{rank} &middot; index {i}</div>",
             f"<div class='given'>given: <b>{e(given)}</b></div>",
             f"<div class='suggested'>suggested: <b>{e(suggested)}</b> ({float(rec['confidence']):.2f})</div>"]
    if image_caption is not None:
        lines.append(f"<div class='src'>{e(str(image_caption(i)))}</div>")
    lines.append("</figcaption></figure>")
    return "\n".join(lines)


def render_label_issues_html(
    records: Iterable[Mapping[str, Any]],
    image_of: Callable[[int], Any],
    *,
    class_names: Sequence[str] | None = None,
    limit: int | None = DEFAULT_HTML_LIMIT,
    title: str = "Label issues",
    note: str | None = None,
    image_caption: Callable[[int], str] | None = None,
) -> str:
    """The page's HTML: one card per flagged point, in rank order, at most ``limit`` of them.

    Parameters
    ----------
    records : iterable of mapping
        The flagged points, each with ``rank``, ``index`` (training row), ``given_label``,
        ``suggested_label``, ``score`` and ``confidence`` (as :meth:`LabelIssues.records` returns);
        sorted here by rank.
    image_of : callable
        Training index -> its image (see :func:`image_data_uri`); called for the shown cards only.
    class_names : sequence of str, optional, keyword-only
        K class names (default: the label numbers).
    limit : int or None, default 100, keyword-only
        The number of cards (the lowest ranks); None: every flagged point.
    title : str, default "Label issues", keyword-only
        The page's heading and title.
    note : str, optional, keyword-only
        A line under the heading (e.g. the data and the flagging model).
    image_caption : callable, optional, keyword-only
        Training index -> a line at the bottom of its card (e.g. which source image it is).

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    ValueError
        ``limit`` < 1, a label without a class name, or an image ``image_of`` returned that is not one.

    Examples
    --------
    >>> recs = [{"rank": 1, "index": 4, "given_label": 0, "suggested_label": 1, "score": 0.1, "confidence": 0.8}]
    >>> page = render_label_issues_html(recs, lambda i: np.full((2, 2), 9 * i), class_names=["<cat>", "dog"])
    >>> page.count("class='card'"), "given: <b>&lt;cat&gt;</b>" in page, "suggested: <b>dog</b> (0.80)" in page
    (1, True, True)
    """
    rows = sorted(records, key=lambda r: int(r["rank"]))
    n_flagged = len(rows)
    if limit is not None:
        rows = rows[: check_int(limit, "limit", low=1)]
    cards = [_card(r, class_names, image_of, image_caption) for r in rows]
    e = html.escape
    shown = (f"The {len(rows)} most suspect of {n_flagged} flagged training labels, most suspect first: each card "
             "shows the image, its rank and training index (row of X_train), the given label and the suggested "
             "one with the model's confidence." if n_flagged else "No training label is flagged.")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        *([f"<p class='note'>{e(note)}</p>"] if note else []),
        f"<p class='note'>{shown}</p>",
        "<div class='grid'>", *cards, "</div>", "</body></html>", ""])


def write_label_issues_html(
    path: str | os.PathLike[str],
    records: Iterable[Mapping[str, Any]],
    image_of: Callable[[int], Any],
    **kwargs: Any,
) -> str:
    """Write :func:`render_label_issues_html`'s page to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or os.PathLike
        The destination, e.g. ``OUT/label_issues.html``; its folder must exist.
    records : iterable of mapping
        The flagged points (see :func:`render_label_issues_html`).
    image_of : callable
        Training index -> its image.
    **kwargs
        ``class_names``, ``limit``, ``title``, ``note``, ``image_caption`` of
        :func:`render_label_issues_html`.

    Returns
    -------
    str
        ``path`` as a string.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> recs = [{"rank": 1, "index": 0, "given_label": 1, "suggested_label": 0, "score": 0.2, "confidence": 0.7}]
    >>> p = write_label_issues_html(os.path.join(tmp.name, "label_issues.html"), recs, lambda i: np.eye(4))
    >>> os.listdir(tmp.name), open(p).read().count("data:image/png;base64,")
    (['label_issues.html'], 1)
    >>> tmp.cleanup()
    """
    page = render_label_issues_html(records, image_of, **kwargs)
    atomic_write_text(path, page)
    return os.fspath(path)
