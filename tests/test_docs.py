"""The repository stands alone: every document the code and configs point to is in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = [p for d in ("src", "docs", "configs", "benchmarks") for p in (ROOT / d).rglob("*")
         if p.suffix in {".py", ".md", ".toml"}]
FILES.append(ROOT / "README.md")


def test_no_reference_to_documents_outside_the_repository():
    outside = ("SCIEN" + "CE.md", ".." + "/shared")  # notes kept outside the repository
    hits = [f"{p.relative_to(ROOT)}: {w}" for p in FILES for w in outside if w in p.read_text(encoding="utf-8")]
    assert not hits, hits


def test_every_docs_page_referred_to_exists():
    refs = {m for p in FILES for m in re.findall(r"docs/[A-Za-z0-9_\-]+\.md", p.read_text(encoding="utf-8"))}
    assert "docs/science.md" in refs
    missing = sorted(r for r in refs if not (ROOT / r).is_file())
    assert not missing, missing
