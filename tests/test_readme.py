"""The README stays in step with the code."""
import os

from conftest import ROOT


def test_flag_table_is_current():
    import make_flag_table
    text = open(os.path.join(ROOT, "README.md")).read()
    assert make_flag_table.updated_readme(text) == text, \
        "run: python scripts/make_flag_table.py"


def test_flag_table_lists_every_flag_with_default():
    import make_flag_table
    import run_lfads
    table = make_flag_table.flag_table()
    for name in run_lfads.defined_flag_names():
        assert "| `--%s` |" % name in table
    assert "| `--co_dim` | int | `1` |" in table
    assert "| `--do_causal_controller` | bool | `false` |" in table


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md")).read()
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    command = 'pip install -e ".[test]" && python -m pytest -q'
    assert command in readme
    assert command.replace('"', "\\\"") in ci or command in ci
