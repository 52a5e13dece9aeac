"""README.md and docs/*.md: relative links lead somewhere, the README stays short, and the
text cites nothing outside the repository.

A relative link `[text](path)` or `[text](path#anchor)` must name a file of the repository
(relative to the page that holds it); with an anchor, that file must be Markdown with a
heading whose GitHub slug is the anchor. `[text](#anchor)` names a heading of the same page.
Links to web addresses are not followed. Code blocks and inline code are not read.
"""
import collections
import glob
import os
import re
import unicodedata

from conftest import ROOT

README_MAX_LINES = 250

# [text](target) and ![alt](target); the text may hold inline code but no brackets.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+).+?\1")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...

# Citations of documents that are not in the repository (a specification's sections,
# question or issue numbers): the pages say the reason itself, or cite the original code or
# a paper.
CITATION = re.compile(r"\bspec\b|\bspecification\b|§|\bQ\d+\b|\bissues? ?#?\d+|\(issue\b"
                      r"|\bquestion \d+", re.IGNORECASE)


def pages():
    """README.md and every docs/*.md, as paths relative to ROOT."""
    found = ["README.md"] + sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return found


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    in_fence = None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            if in_fence is None:
                in_fence = fence.group(1)
            elif fence.group(1) == in_fence:
                in_fence = None
            continue
        if in_fence is None:
            yield number, line


def slug(heading):
    """GitHub's anchor of a heading: markup dropped, lowercase, punctuation removed except
    hyphens and spaces (letters, digits and underscores stay), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "-_ " or category[0] in "LM" or category == "Nd":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors(path):
    """The anchors of every heading of a Markdown file, with GitHub's -1, -2, ... suffixes
    for repeated headings."""
    seen = collections.Counter()
    result = set()
    for _, line in prose_lines(open(path, encoding="utf-8").read()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        result.add(base if seen[base] == 0 else "%s-%d" % (base, seen[base]))
        seen[base] += 1
    return result


def links(text):
    """(line number, target) of every link outside code."""
    for number, line in prose_lines(text):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def broken_links(page):
    """'page:line: target (reason)' for every relative link of page that leads nowhere."""
    path = os.path.join(ROOT, page)
    text = open(path, encoding="utf-8").read()
    broken = []
    for number, target in links(text):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        goal = (os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if file_part else path)
        where = "%s:%d: %s" % (page, number, target)
        if not os.path.exists(goal):
            broken.append(where + " (no such file)")
            continue
        if not os.path.realpath(goal).startswith(os.path.realpath(ROOT) + os.sep):
            broken.append(where + " (outside the repository)")
            continue
        if anchor:
            if not goal.endswith(".md"):
                broken.append(where + " (anchor in a file that is not Markdown)")
            elif anchor not in anchors(goal):
                broken.append(where + " (no heading with this anchor)")
    return broken


def test_slug_follows_githubs_rule():
    assert slug("Held-out neurons and forward prediction, measured") == \
        "held-out-neurons-and-forward-prediction-measured"
    assert slug("Where a step's time goes") == "where-a-steps-time-goes"
    assert slug("Scoring: `lfads_score`") == "scoring-lfads_score"
    assert slug("Flags of `run_lfads`") == "flags-of-run_lfads"


def test_every_relative_link_resolves():
    assert "README.md" in pages() and len(pages()) > 1
    broken = [line for page in pages() for line in broken_links(page)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_at_most_250_lines():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        count = len(f.read().splitlines())
    assert count <= README_MAX_LINES, (
        "README.md has %d lines (at most %d): move detail to docs/" % (count, README_MAX_LINES))


def test_pages_cite_no_document_outside_the_repository():
    found = []
    for page in pages():
        text = open(os.path.join(ROOT, page), encoding="utf-8").read()
        for number, line in enumerate(text.splitlines(), 1):
            for match in CITATION.finditer(line):
                found.append("%s:%d: %r" % (page, number, match.group(0)))
    assert not found, "citations of documents outside the repository:\n" + "\n".join(found)
