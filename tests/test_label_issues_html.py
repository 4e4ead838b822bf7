"""label_issues.html: the flagged images with their given and suggested labels.

The writer on synthetic images (escaping, card count, pixels, atomicity), `selfdistill label-issues` on
a digits feature file shaped like one `selfdistill extract` writes, and a screenshot of the page in
headless Chromium (the Debian package ``chromium``; CI installs it with .ci/debian-data.sh and there a
missing browser fails instead of skipping).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from selfdistill.cli import main
from selfdistill.data import Dataset, save_npz
from selfdistill.data import images as images_mod
from selfdistill.data.images import load_images, source_images
from selfdistill.report.label_issues_html import (
    DEFAULT_HTML_LIMIT,
    image_data_uri,
    render_label_issues_html,
    write_label_issues_html,
)

HOSTILE = ["<script>alert(1)</script>", "\"'><img src=x onerror=alert(2)>", "a & b", "</figure></div><h1>x"]


class _Page(HTMLParser):
    """Every tag of a page, the src of its images and the text of each card (in document order)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.srcs, self.cards, self._card, self.attrs = [], [], [], None, set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.attrs |= set(attrs)
        if tag == "img":
            self.srcs.append(attrs["src"])
        if tag == "figure":
            self._card = []

    def handle_endtag(self, tag):
        if tag == "figure":
            self.cards.append(" ".join("".join(self._card).split()))
            self._card = None

    def handle_data(self, data):
        if self._card is not None:
            self._card.append(data + " ")


def _decode(uri):
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def _records(n, K=4, seed=0):
    rng = np.random.default_rng(seed)
    given = rng.integers(0, K, n)
    return [{"rank": r + 1, "index": int(10 * r + 3), "given_label": int(given[r]),
             "suggested_label": int((given[r] + 1) % K), "score": 0.01 * r, "confidence": 0.5 + 0.01 * r}
            for r in range(n)]


def _image(i, shape=(16, 16)):
    """A distinct random uint8 image per training index."""
    return np.random.default_rng(1000 + i).integers(0, 256, shape).astype(np.uint8)


# ------------------------------------------------------------------------------ the writer
def test_hostile_class_names_are_escaped():
    page = render_label_issues_html(_records(8), _image, class_names=HOSTILE, title="<i>t</i>",
                                    note="<b>n</b>", image_caption=lambda i: f"<u>{i}</u>")
    parsed = _Page(page)
    assert set(parsed.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "p", "div", "figure", "img",
                                "figcaption", "b"}, set(parsed.tags)
    assert "<script" not in page.lower() and parsed.attrs <= {"lang", "charset", "http-equiv", "content", "class",
                                                              "id", "title", "src", "alt"}, parsed.attrs
    for card, rec in zip(parsed.cards, _records(8), strict=True):
        assert f"given: {HOSTILE[rec['given_label']]}" in card
        assert f"suggested: {HOSTILE[rec['suggested_label']]} ({rec['confidence']:.2f})" in card
        assert f"<u>{rec['index']}</u>" in card  # the caption is text, not markup
    assert "&lt;i&gt;t&lt;/i&gt;" in page and "&lt;b&gt;n&lt;/b&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page  # no script, no request


def test_exactly_limit_cards_in_rank_order():
    recs = _records(30)
    calls = []

    def image_of(i):
        calls.append(i)
        return _image(i)

    page = render_label_issues_html(recs[::-1], image_of, limit=7)  # given out of order: sorted by rank
    parsed = _Page(page)
    assert len(parsed.cards) == len(parsed.srcs) == page.count("class='card'") == 7
    assert [c.split()[0] for c in parsed.cards] == [f"#{r}" for r in range(1, 8)]
    assert calls == [r["index"] for r in recs[:7]]  # images read for the shown cards only
    assert "The 7 most suspect of 30 flagged" in page
    assert len(_Page(render_label_issues_html(recs, _image, limit=None)).cards) == 30
    assert len(_Page(render_label_issues_html(recs, _image)).cards) == 30 < DEFAULT_HTML_LIMIT
    assert "No training label is flagged" in render_label_issues_html([], _image)
    with pytest.raises(ValueError, match="limit"):
        render_label_issues_html(recs, _image, limit=0)
    with pytest.raises(ValueError, match="class name"):
        render_label_issues_html(recs, _image, class_names=["a", "b"])  # labels up to 3


def test_images_decode_back_to_their_pixels():
    recs = _records(5)
    page = render_label_issues_html(recs, _image)
    for uri, rec in zip(_Page(page).srcs, recs, strict=True):
        rgb = _decode(uri)
        assert rgb.shape == (112, 112, 3)  # 16 x 16, each pixel a 7 x 7 square
        want = np.kron(_image(rec["index"]), np.ones((7, 7), dtype=np.uint8))
        for c in range(3):
            np.testing.assert_array_equal(rgb[:, :, c], want)
    # 28 x 28 (Fashion-MNIST's size): factor 4; floats in [0, 1], other floats, RGB, booleans
    a = _image(0, (28, 28))
    np.testing.assert_array_equal(_decode(image_data_uri(a))[::4, ::4, 0], a)
    np.testing.assert_array_equal(_decode(image_data_uri(a / 255.0, scale=1))[:, :, 1], a)
    np.testing.assert_array_equal(_decode(image_data_uri(a * 2.0 - 300.0, scale=1))[:, :, 2],
                                  np.rint((a - a.min()) * 255.0 / (a.max() - a.min())).astype(np.uint8))
    rgb = np.stack([a, 255 - a, a // 2], axis=2)
    np.testing.assert_array_equal(_decode(image_data_uri(rgb, scale=2))[::2, ::2], rgb)
    np.testing.assert_array_equal(_decode(image_data_uri(np.eye(3, dtype=bool), scale=1))[:, :, 0], 255 * np.eye(3))
    for bad in (np.zeros(5), np.zeros((4, 4, 2)), np.zeros((0, 3)), np.array([["a"]])):
        with pytest.raises(ValueError, match="image"):
            image_data_uri(bad)


def test_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "label_issues.html"
    assert write_label_issues_html(path, _records(3), _image, class_names=list("abcd")) == str(path)
    first = path.read_text(encoding="utf-8")
    assert os.listdir(tmp_path) == ["label_issues.html"] and first.count("class='card'") == 3

    def broken(i):
        raise RuntimeError("image gone")

    with pytest.raises(RuntimeError):
        write_label_issues_html(path, _records(3), broken)

    def no_disk(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", no_disk)
    with pytest.raises(OSError, match="disk full"):
        write_label_issues_html(path, _records(5), _image)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["label_issues.html"]  # no temporary file left
    assert path.read_text(encoding="utf-8") == first  # the old page kept


# ------------------------------------------------------------------------------ the command
def _extracted_digits(path, *, n_train=300, n_test=120, flips=15, info_extra=None, seed=0):
    """A feature file shaped like `selfdistill extract digits` writes: rows in a shuffled order of the source
    images (train_indices), features = the pixels, ``flips`` training labels moved to another class."""
    images, labels, classes, _ = load_images("digits", "all")
    rng = np.random.default_rng(seed)
    order = rng.permutation(labels.size)
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    X = images.reshape(labels.size, -1) / 255.0
    X = X - X[tr].mean(0)
    y = labels[tr].copy()
    flip = rng.choice(n_train, flips, replace=False)
    y[flip] = (y[flip] + rng.integers(1, 10, flips)) % 10
    info = {"source": "selfdistill extract", "dataset": "digits", "split": {"kind": "digits"},
            "train_indices": tr.tolist(), "test_indices": te.tolist(), **(info_extra or {})}
    save_npz(path, Dataset(X_train=X[tr], y_train=y, X_test=X[te], y_test=labels[te], class_names=classes,
                           name="digits_fake", info=info))
    return images, tr, y


def test_cli_writes_the_page_of_an_extracted_file(tmp_path, capsys):
    data = tmp_path / "feat.npz"
    images, tr, y = _extracted_digits(data)
    out = tmp_path / "out"
    assert main(["label-issues", str(data), "-o", str(out), "--reg", "0.01", "--model", "round 0",
                 "--html-limit", "6"]) == 0
    printed = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["label_issues.csv", "label_issues.html", "label_issues.json", "summary.md"]
    assert str(out / "label_issues.html") in printed and "note:" not in printed
    rows = (out / "label_issues.csv").read_text().splitlines()[1:]
    assert len(rows) > 6  # more flagged than shown
    page = _Page((out / "label_issues.html").read_text(encoding="utf-8"))
    assert len(page.cards) == 6
    for card, src, row in zip(page.cards, page.srcs, rows, strict=False):
        rank, index, given, suggested = (int(v) for v in row.split(",")[:4])
        assert card.startswith(f"#{rank} · index {index} ") and f"digits image {tr[index]}" in card
        assert f"given: {given} " in card and f"suggested: {suggested} (" in card and given == y[index]
        np.testing.assert_array_equal(_decode(src)[::14, ::14, 0], images[tr[index]])  # row -> train_indices


def test_cli_notes_why_there_is_no_page(tmp_path, capsys, monkeypatch):
    args = ["--reg", "0.01", "--model", "round 0"]
    plain = tmp_path / "plain.npz"  # a feature file with no info
    with np.load(_write(tmp_path / "x.npz")) as ds:
        np.savez(plain, **{k: ds[k] for k in ("X_train", "y_train", "X_test", "y_test")})
    gone = tmp_path / "fm.npz"  # Fashion-MNIST no longer installed
    _extracted_digits(gone, info_extra={"dataset": "fashion_mnist", "split": {"source": str(tmp_path / "nowhere")}})
    monkeypatch.setenv("SELFDISTILL_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(images_mod, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    short = tmp_path / "short.npz"  # train_indices of another length than the file's rows
    _extracted_digits(short, info_extra={"train_indices": list(range(10))})
    expected = {plain: "records no source images", gone: "Fashion-MNIST not found", short: "records 10 training images"}
    for data, why in expected.items():
        out = tmp_path / f"out-{data.stem}"
        assert main(["label-issues", str(data), "-o", str(out), *args]) == 0
        printed = capsys.readouterr().out
        notes = [line for line in printed.splitlines() if line.startswith("note: no label_issues.html: ")]
        assert len(notes) == 1 and why in notes[0], printed
        assert sorted(os.listdir(out)) == ["label_issues.csv", "label_issues.json", "summary.md"]
    out = tmp_path / "out-nohtml"
    assert main(["label-issues", str(_write(tmp_path / "y.npz")), "-o", str(out), "--no-html", *args]) == 0
    assert "note:" not in capsys.readouterr().out and "label_issues.html" not in os.listdir(out)
    assert main(["label-issues", str(tmp_path / "y.npz"), "-o", str(out), *args]) == 0  # a page, then none
    assert "label_issues.html" in os.listdir(out)
    assert main(["label-issues", str(plain), "-o", str(out), *args]) == 0
    assert "removed the earlier run's" in capsys.readouterr().out and "label_issues.html" not in os.listdir(out)
    assert main(["label-issues", "digits", "-o", str(tmp_path / "bad"), "--html-limit", "0"]) == 2
    assert "--html-limit" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def _write(path):
    _extracted_digits(path)
    return path


def test_cli_page_of_fashion_mnist_features(tmp_path, capsys):
    """Rows of a file 'extracted' from Fashion-MNIST (the Debian package) show their own idx images."""
    try:
        images, labels, classes, _ = load_images("fashion_mnist", "train")
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install dataset-fashion-mnist: {exc}")
        pytest.skip(f"dataset-fashion-mnist not installed: {exc}")
    rng = np.random.default_rng(0)
    tr = rng.choice(labels.size, 400, replace=False)
    X = images[tr].reshape(400, -1) / 255.0
    y = labels[tr].copy()
    y[:20] = (y[:20] + 5) % 10
    info = {"source": "selfdistill extract", "dataset": "fashion_mnist", "split": {"kind": "fashion_mnist"},
            "train_indices": tr[:300].tolist(), "test_indices": []}  # test rows from the training set: no matter
    data = tmp_path / "fm.npz"
    save_npz(data, Dataset(X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:], class_names=classes,
                           name="fm", info=info))
    out = tmp_path / "out"
    assert main(["label-issues", str(data), "-o", str(out), "--reg", "0.01", "--model", "round 0",
                 "--html-limit", "5", "-q"]) == 0
    page = _Page((out / "label_issues.html").read_text(encoding="utf-8"))
    assert len(page.cards) == 5 and capsys.readouterr().out == ""
    for card, src in zip(page.cards, page.srcs, strict=True):
        index = int(re.match(r"#\d+ · index (\d+) ", card).group(1))
        assert f"given: {classes[y[index]]} " in card and f"fashion_mnist train image {tr[index]}" in card
        np.testing.assert_array_equal(_decode(src)[::4, ::4, 0], images[tr[index]])


def test_embedded_digits_record_their_images():
    from selfdistill.data import load_digits

    ds = load_digits(seed=1)
    images, idx, part = source_images(ds.info, n_train=ds.n_train)
    from sklearn.datasets import load_digits as sk_digits

    np.testing.assert_array_equal(np.rint(images[idx] / 255.0 * 16), sk_digits().images[idx])  # row i's image
    assert part == "digits"
    with pytest.raises(LookupError, match="cannot be read back"):
        source_images({"dataset": "/data/my_folder", "train_indices": [0]})
    with pytest.raises(ValueError, match="out of range"):
        source_images({"dataset": "digits", "train_indices": [0, 1797]})


# ------------------------------------------------------------------------------ the screenshot
BROWSERS = ("chromium", "chromium-headless-shell", "chromium-browser")


@pytest.fixture(scope="module")
def chromium():
    found = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if found is None:
        why = f"none of {', '.join(BROWSERS)} on PATH (apt-get install chromium; .ci/debian-data.sh does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must install chromium: {why}")
        pytest.skip(f"chromium not installed: {why}")
    return found


def _screenshot(browser, html_path, tmp_path, size=(900, 600)):
    png = html_path.with_suffix(".png")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={png}", html_path.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and png.is_file(), res.stdout[-2000:] + res.stderr[-2000:]
    shot = np.asarray(Image.open(png).convert("RGB")).astype(np.float64)
    assert shot.shape == (size[1], size[0], 3)
    return shot.mean(axis=2)


def _best_match(shot, template):
    """(mean squared difference, (row, col)) of the window of ``shot`` closest to ``template``."""
    from scipy.signal import fftconvolve

    ssd = (fftconvolve(shot ** 2, np.ones_like(template), mode="valid")
           - 2 * fftconvolve(shot, template[::-1, ::-1], mode="valid") + np.sum(template ** 2))
    at = np.unravel_index(np.argmin(ssd), ssd.shape)
    return max(float(ssd[at]), 0.0) / template.size, (int(at[0]), int(at[1]))


def test_screenshot_shows_each_image_in_rank_order(chromium, tmp_path):
    """Each card's image is drawn pixel for pixel (found by template matching in the screenshot), the
    cards left to right in rank order; the same page with its images taken out has no such window."""
    recs = _records(4)
    page = tmp_path / "label_issues.html"
    write_label_issues_html(page, recs, _image, class_names=HOSTILE)
    shot = _screenshot(chromium, page, tmp_path)
    assert shot.std() > 20 and len(np.unique(shot)) > 64  # not blank
    where = []
    for rec in recs:
        template = np.kron(_image(rec["index"]), np.ones((7, 7))).astype(np.float64)
        err, at = _best_match(shot, template)
        assert err < 4.0, (rec, err)  # within two grey levels (rms) of the image
        where.append(at)
    assert len({r for r, _ in where}) == 1 and [c for _, c in where] == sorted(c for _, c in where), where
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"src='data:image/png;base64,[^']*'", "src=''", page.read_text()), encoding="utf-8")
    control = _screenshot(chromium, bare, tmp_path)
    template = np.kron(_image(recs[0]["index"]), np.ones((7, 7))).astype(np.float64)
    assert _best_match(control, template)[0] > 500.0
    assert np.mean(np.abs(control - shot) > 30) > 0.02  # clearly another picture
