"""The documentation holds together: relative links resolve, anchors name real headings, and the
README keeps the test command that CI runs verbatim (no network: external links are not fetched)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) or ![alt](target), with an optional "title"; the text may hold `code`.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def doc_files() -> list[Path]:
    files = [README, ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    return files


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (their contents are neither links nor headings)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path):
        targets += LINK.findall(INLINE_CODE.sub("", line))
    return targets


def test_slug_matches_github() -> None:
    assert (
        slug("FetchPickAndPlace and FetchSlide (2026-12-02)") == "fetchpickandplace-and-fetchslide-2026-12-02"
    )
    assert slug("Statistics in `mtgc compare`") == "statistics-in-mtgc-compare"
    assert slug("summary.json") == "summaryjson"
    assert slug("Behaviour cloning: `algo.name: bc`") == "behaviour-cloning-algoname-bc"


def test_every_doc_file_exists() -> None:
    for path in doc_files():
        assert path.is_file(), path


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in links(path):
        if SCHEME.match(target):
            continue  # http(s), mailto: not fetched
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
            continue
        if anchor:
            if linked.suffix != ".md" or linked.is_dir():
                broken.append(f"{target}: an anchor into something that is not a markdown file")
            elif anchor not in anchors(linked):
                broken.append(f"{target}: no heading '#{anchor}' in {linked.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(README) if not SCHEME.match(t)}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def ci_test_command() -> str:
    """The command .ci/run runs: its last line that is neither blank nor a comment."""
    lines = [line.strip() for line in CI_SCRIPT.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")][-1]


def bash_blocks(path: Path) -> list[list[str]]:
    blocks, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if current is None and line.strip() == "```bash":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200


def test_readme_holds_the_ci_test_command() -> None:
    command = ci_test_command()
    assert command.startswith("python3 -m venv .venv") and "pytest" in command
    lines = README.read_text(encoding="utf-8").splitlines()
    assert command in lines, "the README lost the exact test command that .ci/run runs"
    # On the first screen, as the second set-up command, alone in its bash block.
    assert lines.index(command) < 30
    assert bash_blocks(README)[1] == [command]
