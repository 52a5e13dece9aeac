"""Shared test set-up: the repo root on sys.path, quiet TensorFlow, shared fixtures.

The repo root comes first on sys.path so that the tests exercise this checkout even
where the environment holds an installed copy of another one. This is the one file of
the test code that changes sys.path: the processes the tests start get the checkout
through PYTHONPATH instead, and tests/warm_python.py's forked commands get the
sys.path Python would build for them from `set_command_search_path` below.
"""
import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STARTUP_PATH = list(sys.path)  # as the interpreter built it (before the line below)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
# the shared helpers' asserts explain their failures as the tests' own do
pytest.register_assert_rewrite("lfads_testdata", "lfads_reference")

# The original LFADS's checkpoint and outputs on its own synthetic data (see MANIFEST.md).
REFERENCE = os.path.join(ROOT, "tests", "data", "reference_original")


def reset_op_determinism():
    """Turns TensorFlow's process-wide op determinism off again (test hygiene).

    Seeded training switches it on for good; every test module ends with this so that
    later modules' unseeded in-process runs still work.
    """
    if "tensorflow" not in sys.modules:
        return  # nothing turned it on; importing TensorFlow here would only cost time
    from tensorflow.python.framework import config
    if hasattr(config, "disable_op_determinism"):
        config.disable_op_determinism()


@pytest.fixture(scope="module", autouse=True)
def _reset_determinism():
    yield
    reset_op_determinism()


_WARM = {}


def pytest_collection_modifyitems(session, config, items):
    """Tests of modules that set RUN_LAST = True run after all the others: they wait for
    the longest background job, which gets the whole run to finish beside the tests."""
    last = [item for item in items
            if getattr(getattr(item, "module", None), "RUN_LAST", False)]
    if last:
        items[:] = [item for item in items if item not in last] + last


def pytest_sessionstart(session):
    """Starts the warm interpreter's server (tests/warm_python.py) before collection: its
    TensorFlow import runs beside the test process's own (a run that uses neither the
    server nor a background job pays a few seconds of the idle core)."""
    if not session.config.option.collectonly:  # (nothing will run)
        _start_warm_python()


def pytest_collection_finish(session):
    """Starts the background jobs of the collected tests (tests/background.py): they run
    beside the tests (the test process keeps mostly to one core)."""
    if session.config.option.collectonly:
        return
    import background
    background.start(session.items, python=_warm_python_or_cold)


def _start_warm_python():
    if "server" not in _WARM:
        import shutil
        import tempfile
        import warm_python as wp
        folder = tempfile.mkdtemp(prefix="warm_python")
        _WARM["server"] = wp.start(folder)
        _WARM["cleanup"] = lambda: shutil.rmtree(folder, ignore_errors=True)
    return _WARM["server"]


def _warm_python_or_cold():
    """The warm interpreter's path once its server is ready; this Python if the server
    could not start (a note says so; everything works, more slowly)."""
    try:
        return _start_warm_python().python()
    except Exception as e:  # noqa: BLE001 - e.g. no Unix sockets in a sandbox
        sys.stderr.write("note: no warm python (%s); commands start cold\n" % e)
        return sys.executable


def pytest_terminal_summary(terminalreporter):
    import background
    lines = background.report()
    if lines:
        terminalreporter.section("background jobs")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session):
    import background
    background.stop()
    if "server" in _WARM:
        _WARM.pop("server").stop()
        _WARM.pop("cleanup")()


@pytest.fixture(scope="session")
def warm_python():
    """An executable `python` whose commands start with TensorFlow already imported
    (tests/warm_python.py): for scripts that start many Python processes, where the
    6-8 s import in each is not what the test is about."""
    return _warm_python_or_cold()


# ------------------------------------------------------------------ sys.path of commands
def python_path(env):
    """The entries of PYTHONPATH in the environment `env` (a dict)."""
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


def interpreter_search_path():
    """The part of this interpreter's start-up sys.path that no command changes: without
    its first entry (the script's folder) and the entries of its PYTHONPATH."""
    return _STARTUP_PATH[1 + len(python_path(os.environ)):]


def set_command_search_path(first, env, base_path):
    """Makes sys.path what Python builds for a command (in a process forked by
    tests/warm_python.py, whose interpreter started for another): `first` (the script's
    folder, or the working folder for -m), the command's PYTHONPATH (env), then
    base_path (interpreter_search_path of the server)."""
    sys.path[:] = [first] + python_path(env) + list(base_path)
