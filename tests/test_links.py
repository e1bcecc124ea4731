"""No link in the repository's Markdown points outside the repository.

Every ``.md`` file git knows of (tracked, or new and not ignored: README.md, docs/, benchmarks/results/, …)
is read outside its code (fenced blocks and inline code spans, where commands and paths are text, not
links). Each link target — ``[text](target)``, ``![alt](target)``, ``[ref]: target``, ``<http…>``, HTML
``href``/``src`` — must be a path inside the repository that exists (an ``#anchor`` after it is allowed);
a link to another site (``http://``, ``https://``, ``//``), to a file that does not exist, or up out of the
repository (``../shared/…``) fails the test. ``ALLOWED_EXTERNAL`` lists the external links allowed: none.
Bare mentions of the design document that lives outside the repository (``DESIGN.md``) fail too: its
content is in docs/concepts/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_EXTERNAL: set[str] = set()

INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>")
HTML = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
BARE_URL = re.compile(r"(?<![(<\w])(https?://[^\s)>\]]+)")


def markdown_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted({ROOT / p for p in out.split("\0") if p and (ROOT / p).is_file()})


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (line count kept)."""
    text = re.sub(r"^(\s*)(```|~~~).*?^\1\2[ \t]*$", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


def targets(text: str) -> list[str]:
    body = prose(text)
    found = [m.group(1) for m in INLINE.finditer(body)]
    found += [m.group(1) for m in REFERENCE.finditer(body)]
    found += [m.group(1) for m in AUTOLINK.finditer(body)]
    found += [m.group(1) for m in HTML.finditer(body)]
    found += [m.group(1) for m in BARE_URL.finditer(INLINE.sub("", body))]
    return found


def problem(page: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``page``) points outside the repository, or None when it does not."""
    if target in ALLOWED_EXTERNAL:
        return None
    if re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", target, re.I):
        return "a link to another site"
    path = target.split("#", 1)[0].split("?", 1)[0]
    if not path:
        return None  # an anchor on the same page
    resolved = (page.parent / path).resolve() if not path.startswith("/") else (ROOT / path.lstrip("/")).resolve()
    if ROOT.resolve() not in resolved.parents and resolved != ROOT.resolve():
        return "a link out of the repository"
    if not resolved.exists():
        return "a link to a file that does not exist"
    return None


def test_the_link_finder_finds_each_kind():
    text = ("see [a](docs/x.md#y) and ![b](img.png \"t\") and <https://example.org> and "
            "[c](https://example.org/p) and https://bare.example and `[d](../shared/x)`\n"
            "```bash\ncurl http://localhost:8000 [e](../nope)\n```\n[ref]: ../shared/DESIGN.md\n"
            "<a href=\"../x.md\">x</a>\n")
    assert sorted(targets(text)) == sorted(["docs/x.md#y", "img.png", "https://example.org", "https://example.org/p",
                                            "https://bare.example", "../shared/DESIGN.md", "../x.md"])
    readme = ROOT / "README.md"
    assert problem(readme, "https://example.org") == "a link to another site"
    assert problem(readme, "../shared/DESIGN.md") == "a link out of the repository"
    assert problem(readme, "docs/nope.md") == "a link to a file that does not exist"
    assert problem(readme, "docs/index.md#where-to-start") is None
    assert problem(readme, "#set-up-two-commands") is None


@pytest.fixture(scope="module")
def files() -> list[Path]:
    found = markdown_files()
    assert ROOT / "README.md" in found and any(p.parent.name == "docs" for p in found)
    return found


def test_no_markdown_link_points_outside_the_repository(files):
    bad = []
    for page in files:
        text = page.read_text(errors="replace")
        for target in targets(text):
            why = problem(page, target)
            if why:
                bad.append(f"{page.relative_to(ROOT)}: {target} — {why}")
    assert not bad, f"{len(bad)} link(s) point outside the repository:\n" + "\n".join(bad)


def test_no_markdown_file_cites_the_design_document_outside_the_repository(files):
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in files
           for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if "DESIGN.md" in line]
    assert not bad, "cite docs/concepts/ instead of DESIGN.md (not in the repository): " + ", ".join(bad)


def test_the_report_cites_a_page_inside_the_repository():
    from mlcil.bench.report import markdown

    source = (ROOT / "src" / "mlcil" / "bench" / "report.py").read_text()
    assert "DESIGN.md" not in source and "docs/concepts/metrics.md" in source
    assert (ROOT / "docs" / "concepts" / "metrics.md").is_file()
    assert callable(markdown)


def test_no_source_file_cites_the_design_document_outside_the_repository():
    """Docstrings and comments cite docs/ pages (in every clone) instead of DESIGN.md (in none)."""
    listed = subprocess.run(["git", "ls-files", "src", "benchmarks", ".ci"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    bad = [f"{name}:{i}" for name in listed if name.endswith((".py", ".sh", "run"))
           for i, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1) if "DESIGN.md" in line]
    assert not bad, "cite docs/concepts/ instead of DESIGN.md (not in the repository): " + ", ".join(bad)
