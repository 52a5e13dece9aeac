"""Fixture work that runs beside the tests, on the core the test process leaves idle.

The test process keeps to about one core (tracing a model is Python, and training runs
with one TensorFlow thread), so on a two-core machine the other core waits. A fixture
that needs only files (a trained model's folder, the outputs of the evaluation kinds, a
script's output) can have that work done in a process of its own, started as soon as
the tests are collected, while the tests before it run. A test module declares it:

    def train_heldout(folder):          # writes everything it makes into folder
        ...

    BACKGROUND = {"trained": train_heldout}   # fixture name -> job function

    @pytest.fixture(scope="module")
    def trained():
        folder = background.result(train_heldout)

conftest.py hands the jobs of the collected tests to `start` (only jobs whose fixture a
collected test uses); they run one at a time, in the order the tests need them, each in
a process of the warm interpreter (tests/warm_python.py, TensorFlow already imported):
`python tests/background.py run MODULE FUNCTION FOLDER`. A job is its function: modules
that name the same function share one run. `result` waits for a job (and runs it now if
it was not started) and fails with the job's output if the job failed. A job takes
nothing from the test process but its folder, so its work is what the same function
would do in the test process; the function's module is imported afresh there.
"""
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUT = 1800  # seconds a fixture waits for its job


class Job:
    def __init__(self, module, function, folder):
        self.module, self.function = module, function
        self.name = "%s.%s" % (module, function)
        self.folder = folder
        self.log = folder + ".log"
        self.done = threading.Event()
        self.returncode = None
        self.started = False
        self.ran = None  # (start, end) in time.monotonic() seconds
        self.waited = 0.0  # seconds tests spent waiting for it


class Scheduler:
    """Runs jobs one after another in a thread of the test process (each job is a
    subprocess; the thread only waits)."""

    def __init__(self, python=None):
        self.root = tempfile.mkdtemp(prefix="lfads_background")
        self.python = python or (lambda: sys.executable)
        self.jobs = {}
        self.queue = []
        self.procs = set()  # the job processes running now
        self.stopped = False
        self.lock = threading.Lock()
        self.thread = None
        self.env = None

    def add(self, module, function):
        key = (module, function)
        if key not in self.jobs:
            folder = os.path.join(self.root, "%s.%s" % key)
            self.jobs[key] = Job(module, function, folder)
            self.queue.append(self.jobs[key])
        return self.jobs[key]

    def start(self, env=None):
        self.env = env
        if self.queue and self.thread is None:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()

    def _loop(self):
        try:
            python = self.python()
        except Exception:  # noqa: BLE001 - no warm interpreter: a cold one does
            python = sys.executable
        while True:
            with self.lock:
                pending = [j for j in self.queue if not j.started]
                if self.stopped or not pending:
                    return
                job = pending[0]
                job.started = True
            self._run(job, python)

    def _run(self, job, python):
        env = dict(os.environ if self.env is None else self.env)
        env["LFADS_WARM_PYTHON"] = python if python != sys.executable else ""
        # this checkout first, as conftest.py puts it first for the tests themselves
        env["PYTHONPATH"] = os.pathsep.join(
            [ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
        proc = None
        start = time.monotonic()
        try:
            with open(job.log, "w") as log:
                proc = subprocess.Popen(
                    [python, os.path.abspath(__file__), "run", job.module, job.function,
                     job.folder], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
                self.procs.add(proc)
                job.returncode = proc.wait()
        finally:
            self.procs.discard(proc)
            job.ran = (start, time.monotonic())
            job.done.set()

    def result(self, module, function):
        job = self.add(module, function)
        with self.lock:
            run_here = not job.started  # not started yet: run it now, in this thread
            job.started = True
        waiting = time.monotonic()
        if run_here:
            self._run(job, self.python())
        finished = job.done.wait(TIMEOUT)
        job.waited += time.monotonic() - waiting
        if not finished:
            raise RuntimeError("background job %s still running after %d s"
                               % (job.name, TIMEOUT))
        if job.returncode != 0:
            with open(job.log) as f:
                raise RuntimeError("background job %s failed (status %s):\n%s"
                                   % (job.name, job.returncode, f.read()[-5000:]))
        return job.folder

    def report(self):
        """One line per job: how long it ran, when it started (seconds after the
        first job), and how long tests waited for it: where the run's time went."""
        jobs = [j for j in self.jobs.values() if j.ran is not None]
        if not jobs:
            return []
        t0 = min(j.ran[0] for j in jobs)
        return ["%-60s ran %6.1f s from +%6.1f s, tests waited %6.1f s"
                % (j.name, j.ran[1] - j.ran[0], j.ran[0] - t0, j.waited) for j in jobs]

    def stop(self):
        with self.lock:
            self.stopped = True
        for proc in list(self.procs):
            if proc.poll() is None:
                proc.kill()
        if self.thread is not None:
            self.thread.join(timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


_SCHEDULER = {}


def scheduler(python=None):
    if "s" not in _SCHEDULER:
        _SCHEDULER["s"] = Scheduler(python)
    return _SCHEDULER["s"]


def start(items, python=None):
    """Starts the jobs of the collected test items (pytest Items), in the order the
    items use them."""
    sched = scheduler(python)
    alone = True
    for item in items:
        module = getattr(item, "module", None)
        jobs = getattr(module, "BACKGROUND", None) or {}
        used = [name for name in getattr(item, "fixturenames", ()) if name in jobs]
        for name in used:
            sched.add(jobs[name].__module__, jobs[name].__name__)
        alone = alone and bool(used)
    # LFADS_BACKGROUND_ALONE=1: every test waits for a job, none runs beside them (a job
    # may then use both cores)
    sched.start(dict(os.environ, LFADS_BACKGROUND_ALONE="1" if alone else "0"))
    return sched


def result(function):
    """The folder of the job `function` (a module-level function), once it is done."""
    return scheduler().result(function.__module__, function.__name__)


def report():
    """Scheduler.report of the run (also after `stop`)."""
    return _SCHEDULER["s"].report() if "s" in _SCHEDULER else _SCHEDULER.get("report", [])


def stop():
    if "s" in _SCHEDULER:
        sched = _SCHEDULER.pop("s")
        sched.stop()
        _SCHEDULER["report"] = sched.report()


def _run_job(module, function, folder):
    # the test modules are importable from this file's folder, the first entry of the
    # search path of `python tests/background.py`; this checkout comes from PYTHONPATH
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(folder, exist_ok=True)
    getattr(importlib.import_module(module), function)(folder)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        try:
            _run_job(*sys.argv[2:])
        except Exception:  # noqa: BLE001 - the log tells the fixture what went wrong
            traceback.print_exc()
            sys.exit(1)
    else:
        sys.exit(__doc__)
