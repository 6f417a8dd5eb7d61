"""The README and the guide in docs/ hold together: every relative link and image resolves
(file and heading anchor), every guide page is reachable from the index and links back to
the README, and the window's shortcut table is the one the window shows. No network: links
with a scheme (https:, mailto:) are not followed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: pages older than the guide, written for contributors; they need not link back
NOT_GUIDE_PAGES = {"architecture.md", "snapshot-format.md"}

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target); text may hold one level of brackets (an image in a link)
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_SRC = re.compile(r"""<(img|a)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _prose(text: str, keep_code: bool = False) -> str:
    """``text`` with fenced code blocks blanked and, unless ``keep_code``, inline code spans
    blanked too; newlines and offsets are kept, so a link may span lines."""
    lines, fenced = text.split("\n"), False
    for i, line in enumerate(lines):
        if _FENCE.match(line.lstrip()):
            fenced, lines[i] = not fenced, ""
        elif fenced:
            lines[i] = ""
    prose = "\n".join(lines)
    if not keep_code:
        prose = _CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    return prose


def links(text: str) -> list[tuple[int, bool, str]]:
    """(line, is_image, target) of every Markdown link, image and HTML src/href in prose."""
    prose, found = _prose(text), []

    def line_of(offset: int) -> int:
        return prose.count("\n", 0, offset) + 1

    for m in _LINK.finditer(prose):
        found.append((line_of(m.start()), m.group(1) == "!", m.group(3)))
        # an image inside a link's text: [![alt](img.png)](target)
        for inner in _LINK.finditer(m.group(2)):
            found.append((line_of(m.start()), inner.group(1) == "!", inner.group(3)))
    for m in _HTML_SRC.finditer(prose):
        found.append((line_of(m.start()), m.group(1).lower() == "img", m.group(2)))
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text lower-cased, punctuation
    dropped (letters, digits, '_', '-' and spaces kept), spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8"), keep_code=True).splitlines():
        m = _HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    # explicit <a id="..."> / <a name="..."> anchors
    text = path.read_text(encoding="utf-8")
    out.update(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", text))
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links and images of one Markdown file under ``root``."""
    problems = []
    for number, is_image, target in links(path.read_text(encoding="utf-8")):
        where = f"{path.relative_to(root)}:{number}: {target}"
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        goal = (path.parent / file_part).resolve() if file_part else path
        if root not in goal.parents and goal != root:
            problems.append(f"{where}: points outside the repository")
            continue
        if not goal.exists():
            problems.append(f"{where}: no such {'image' if is_image else 'file'}")
            continue
        if is_image and not goal.is_file():
            problems.append(f"{where}: the image is not a file")
            continue
        if anchor:
            if goal.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(goal):
                problems.append(f"{where}: no heading '#{anchor}' in {goal.relative_to(root)}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / "other.md").write_text("# A title — with `code`\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Here\n\n"
        "[ok](other.md#a-title--with-code) [ok](other.md#twice-1) [ok](#here) ![ok](img.png)\n"
        "[web](https://example.org/nothing) `[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[gone](missing.md) ![gone](missing.png) [bad anchor](other.md#nope) [bad](#nope)\n"
        "[![badge](missing-badge.svg)](other.md) [up](../outside.md) [a link\nover two lines](other.md#gone)\n"
        '<img src="img.png" width="40"> <img src="nothing.png">\n',
        encoding="utf-8",
    )
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 8, problems
    for text in ("page.md:11: nothing.png: no such image", "../outside.md: points outside the repository", "page.md:9: other.md#gone: no heading", "missing.md: no such file", "missing.png: no such image", "other.md#nope: no heading",
                 "#nope: no heading", "missing-badge.svg: no such image"):
        assert any(text in p for p in problems), (text, problems)


def test_github_slugs() -> None:
    assert github_slug("Faithful to the reference code — and where it is not") == (
        "faithful-to-the-reference-code--and-where-it-is-not")
    assert github_slug("Methods x shifts: `protoview compare`") == "methods-x-shifts-protoview-compare"
    assert github_slug("On a Linux desktop: Qt's system libraries") == "on-a-linux-desktop-qts-system-libraries"
    assert github_slug("Extract on many GPUs (`torchrun`)") == "extract-on-many-gpus-torchrun"


def test_every_guide_page_is_in_the_index_and_links_back() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/README.md)" in readme, "the README links to the guide's index"
    for page in sorted(DOCS.glob("*.md")):
        if page.name == "README.md":
            continue
        assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"
        if page.name in NOT_GUIDE_PAGES:
            continue
        title, _, rest = page.read_text(encoding="utf-8").partition("\n")
        assert title.startswith("# "), f"{page.name} starts with its title"
        opening = rest.strip().split("\n\n", 1)[0]  # the paragraph under the title
        assert "](../README.md" in opening, f"{page.name}: its opening paragraph links back to the README"


def test_the_window_page_lists_the_windows_shortcuts() -> None:
    pytest.importorskip("PySide6")
    from protoview.gui.window._menus import SHORTCUTS

    text = (DOCS / "window.md").read_text(encoding="utf-8")
    start = "<!-- shortcuts: the SHORTCUTS of protoview/gui/window/_menus.py -->\n"
    end = "<!-- end of the shortcuts -->"
    assert start in text and end in text
    table = text.split(start, 1)[1].split(end, 1)[0]
    expected = "| key | what it does |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in SHORTCUTS)
    assert table == expected, "docs/window.md's shortcut table is not Help → Shortcuts; put this there:\n" + expected
