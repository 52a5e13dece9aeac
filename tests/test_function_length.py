"""Functions a reader can hold: no function of the library over MAX_LINES lines.

Measured from the def line to the function's last line, docstring included; a nested
function counts in its parent's lines and is measured on its own as well. The library
is the top-level run_lfads.py, lfads.py, utils.py and distributions.py and every module
of lfads_tf2/ (scripts, tests and data generators are not).
"""
import ast
import glob
import os
import textwrap

from conftest import ROOT

MAX_LINES = 80
TOP_LEVEL = ("run_lfads.py", "lfads.py", "utils.py", "distributions.py")


def library_files():
    """Paths (relative to ROOT, sorted) of the library's .py files."""
    package = glob.glob(os.path.join(ROOT, "lfads_tf2", "**", "*.py"), recursive=True)
    top = [os.path.join(ROOT, name) for name in TOP_LEVEL]
    return sorted(os.path.relpath(p, ROOT) for p in top + package if os.path.isfile(p))


def function_lengths(source, filename="<source>"):
    """[(qualified name, lines)] of every def (sync or async) in `source`, in order;
    a nested def is named parent.child (a method Class.method)."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename=filename), "")
    return found


def too_long(paths, root=ROOT, max_lines=MAX_LINES):
    """["path:function:lines"] of the functions of `paths` (relative to root) over
    max_lines lines."""
    out = []
    for path in paths:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            source = f.read()
        out += ["%s:%s:%d" % (path, name, n)
                for name, n in function_lengths(source, path) if n > max_lines]
    return out


def test_the_library_is_found():
    files = library_files()
    for path in ("lfads.py", "distributions.py", os.path.join("lfads_tf2", "__init__.py"),
                 os.path.join("lfads_tf2", "model", "fast_rnn.py")):
        assert path in files
    assert not any(p.startswith(("tests", "scripts", "synth_data")) for p in files)


def test_lengths_count_from_def_to_last_line():
    source = textwrap.dedent('''\
        import functools


        @functools.lru_cache
        def outer(x):
            """Doc."""
            def inner(y):
                return y

            return inner(x)


        class Holder:
            async def method(self):
                pass
        ''')
    assert function_lengths(source) == [("outer", 6), ("outer.inner", 2),
                                        ("Holder.method", 2)]


def test_the_check_reports_path_function_and_lines(tmp_path):
    body = "\n".join("    x%d = %d" % (i, i) for i in range(MAX_LINES - 1))
    (tmp_path / "m.py").write_text("def short():\n    pass\n\n\n"
                                   "def fits():\n%s\n\n\n"
                                   "def long():\n%s\n    return 0\n" % (body, body))
    assert too_long(["m.py"], root=str(tmp_path)) == ["m.py:long:%d" % (MAX_LINES + 1)]


def test_no_library_function_is_over_the_limit():
    offenders = too_long(library_files())
    assert not offenders, (
        "functions over %d lines (split them where their comments split them):\n  %s"
        % (MAX_LINES, "\n  ".join(offenders)))
