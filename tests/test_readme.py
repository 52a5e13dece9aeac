"""The README and the flag table in docs/flags.md stay in step with the code."""
import os
import subprocess
import sys

from conftest import ROOT


def test_flag_table_is_current():
    """scripts/make_flag_table.py --check (run as users run it) finds docs/flags.md current."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_flag_table.py"),
                           "--check"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "run: python scripts/make_flag_table.py\n" + proc.stdout \
        + proc.stderr
    assert "is current" in proc.stdout


def test_flag_table_lists_every_flag_with_default():
    from lfads_tf2.train import flags as run_flags
    table = open(os.path.join(ROOT, "docs", "flags.md")).read()
    for name in run_flags.defined_flag_names():
        assert "| `--%s` |" % name in table
    assert "| `--co_dim` | int | `1` |" in table
    assert "| `--do_causal_controller` | bool | `false` |" in table


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md")).read()
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    command = 'pip install -e ".[test]" && pip install --no-deps nlb-tools==0.0.4 && python -m pytest -q'
    assert command in readme
    assert command.replace('"', "\\\"") in ci or command in ci
