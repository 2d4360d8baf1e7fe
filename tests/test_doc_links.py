"""Every relative link in README.md and docs/ names a file or folder of this tree, so the manual cannot point
at a page or module that was moved or removed. Web links and in-page anchors are not checked here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "benchmarks" / "perf" / "RESULTS.md"]
# [text](target) and ![alt](target); the target ends at whitespace or ')' (an optional "title" follows a space)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")


def _links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link outside code blocks and `code` spans."""
    found, in_code = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line.strip()):
            in_code = not in_code
            continue
        if in_code:
            continue
        found += [(number, m[1]) for m in LINK.finditer(re.sub(r"`[^`]*`", "", line))]
    return found


def _relative(target: str) -> str | None:
    """The file part of a relative link; None for web links, mail, and anchors within the page."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
        return None
    return target.split("#", 1)[0].split("?", 1)[0]


def test_the_link_pattern_finds_links():
    sample = ROOT / "README.md"
    targets = [t for _, t in _links(sample)]
    assert "docs/architecture.md" in targets and any(t.endswith(".png") for t in targets)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_resolves(doc):
    broken = []
    for number, target in _links(doc):
        rel = _relative(target)
        if rel and not (doc.parent / rel).exists():
            broken.append(f"{doc.relative_to(ROOT)}:{number}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)
