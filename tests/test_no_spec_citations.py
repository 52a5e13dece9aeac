"""No tracked source or page cites a section or question number of a document that is
not in the repository: code, tests and docs state the reason itself, or cite the
original LFADS code (tensorflow/models research/lfads) or a paper.

The pattern is assembled from pieces so that this file's own source does not match it.
"""
import os
import re
import subprocess

import pytest

from conftest import ROOT

SECTION_SIGN = chr(0xA7)
CITATION = re.compile("|".join([
    r"\b(?i:spec)\s*" + SECTION_SIGN,  # "spec" (any case) followed by a section sign
    SECTION_SIGN + r"\s*\d",           # a section sign followed by a number
    r"\bQ" + r"\d+\b",                 # a question number: Q, digits, word-bounded
]))
CHECKED_SUFFIXES = (".py", ".md", ".sh")


def tracked_files():
    """Paths (relative to ROOT) of the tracked .py, .md and .sh files."""
    if not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode("utf-8")
    return sorted(p for p in out.split("\0") if p.endswith(CHECKED_SUFFIXES))


def citations(text):
    """[(line number, [citations on that line])] of the lines of text that cite."""
    found = [(number, [m.group(0) for m in CITATION.finditer(line)])
             for number, line in enumerate(text.splitlines(), 1)]
    return [(number, matches) for number, matches in found if matches]


@pytest.mark.parametrize("text", [
    "clip log-rates to 80 (spec " + SECTION_SIGN + "16.1)",
    "see (" + SECTION_SIGN + "6)",
    "as in " + SECTION_SIGN + "4.10 and " + SECTION_SIGN + " 5",
    "the t = -1 feedback (Q" + "29)",
    "spec Q" + "18: mean of an empty list",
    "Spec " + SECTION_SIGN + ": the whole document",
])
def test_the_pattern_finds_citations(text):
    assert citations(text)


@pytest.mark.parametrize("text", [
    "Q = np.eye(3)",                        # a bare Q
    "q1, q3 = np.percentile(x, [25, 75])",  # lower-case names
    "FAQ2 and Q1x and QR decomposition",    # Q inside a word or followed by letters
    "the specification of the flags",       # the word alone is not a citation
    "a section sign alone: " + SECTION_SIGN,
])
def test_the_pattern_leaves_ordinary_text_alone(text):
    assert not citations(text)


def test_tracked_files_cite_no_specification_sections_or_questions():
    found = []
    for path in tracked_files():
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):  # deleted in the working tree, not yet committed
            continue
        with open(full, encoding="utf-8", errors="replace") as f:
            found += ["%s:%d: %s" % (path, number, ", ".join(matches))
                      for number, matches in citations(f.read())]
    assert not found, "citations a reader cannot follow:\n" + "\n".join(found)
