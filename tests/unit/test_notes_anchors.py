"""Every citation of docs/asterisk-notes.md#anchor in the repository lands on a heading of that file."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTES = REPO / "docs" / "asterisk-notes.md"
CITATION = re.compile(r"asterisk-notes\.md#([A-Za-z0-9_-]+)")
SEARCHED = ["src", "tests", "tools", "bench", "docker", "contrib", "agi-bin", "docs"]
TEXT_SUFFIXES = {".py", ".md", ".xml", ".conf", ".service", ".sample", ".yaml", ".sh", ""}


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading.

    >>> github_slug("REFER and X-EI"), github_slug("chan_sip forms")
    ('refer-and-x-ei', 'chan_sip-forms')
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors() -> set:
    return {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", NOTES.read_text(), re.M)}


def citations():
    files = [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "Makefile"]
    files += REPO.glob("*.sample")
    for top in SEARCHED:
        files += [p for p in (REPO / top).rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    for path in files:
        if not path.exists() or path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for found in CITATION.finditer(line):
                yield "%s:%d" % (path.relative_to(REPO), number), found.group(1)
        if path == NOTES:
            for found in re.finditer(r"\]\(#([A-Za-z0-9_-]+)\)", text):
                yield "docs/asterisk-notes.md contents", found.group(1)


def test_every_citation_names_an_existing_section():
    """Each asterisk-notes.md#anchor written in the repository (and each contents link) is a real heading."""
    known = anchors()
    cited = list(citations())
    assert len(cited) >= 20, cited
    missing = ["%s -> #%s" % (where, anchor) for where, anchor in cited if anchor not in known]
    assert missing == [], missing


def test_slug_rule_matches_the_headings_cited_most():
    """The slug rule turns this file's headings into the anchors the code cites."""
    assert {"agi-wire-format", "refer-and-x-ei", "transfer-results", "chan_sip-forms", "pyst2",
            "synthflow-api-and-headers", "dial-and-pre-dial-handlers"} <= anchors()
