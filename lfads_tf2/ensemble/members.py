"""The members of an ensemble: their save folders, seeds and flags, and running them as
`run_lfads` processes side by side, P at a time, skipping members that finished.

Member k is exactly the run `run_lfads --kind=<kind> <flags> --seed=<seed + k>
--lfads_save_dir=<root>/member_<k>` makes, in a process of its own (`python -m
run_lfads`), so resume, the save-folder lock, checkpoints, fitlog and TensorBoard work on
a member as on any run, and a member can be trained on or evaluated by hand with
`run_lfads --flagfile=<root>/member_<k>/run_lfads.flags --kind=...`.

Its stdout and stderr go to <member>/log.txt (appended: a resumed member's log keeps
the first part). A training member that exits with status 0 has finished (run_lfads
ends training only at --max_epochs or the learning-rate stop), and FINISHED records
that with its flags: the same command started again skips it without starting
TensorFlow. A member stopped before (a kill, a failure) has no such record and is
started again, and run_lfads resumes it from its newest checkpoint. A rerun with other
flags (e.g. a larger --max_epochs) trains the finished members on, as run_lfads would.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time

import utils
from lfads_tf2.train import flags as run_flags

MEMBER_FOLDER = "member_%d"
FLAGFILE = "run_lfads.flags"
LOG = "log.txt"
FINISHED = "ensemble_member.json"

# run_lfads flags that are not hyperparameters (not in the flagfile): how a process runs,
# not what it computes. Passed on to every member when they differ from the default.
PROCESS_FLAGS = ("intra_op_threads", "inter_op_threads", "allow_gpu_growth", "debug")

# index: k; seed: --seed + k (None: unseeded, each member draws its own); save_dir:
# <root>/member_k (absolute); flags: ["--flag=value", ...], every run_lfads flag of the
# member but --kind.
Member = collections.namedtuple("Member", "index seed save_dir flags")

# status: the process's exit status (None: skipped, finished before); seconds: its wall
# time; error: the last error line of its log (None when status is 0 or None).
Result = collections.namedtuple("Result", "member status seconds error")


def member_flags(hps, seed, save_dir):
    """Every run_lfads flag of hps but --kind, with the member's seed and save folder."""
    return run_flags.flagfile_lines(dict(hps, seed=seed, lfads_save_dir=save_dir))


def make_members(hps, count, root):
    """The `count` members of an ensemble in the folder root, for hps (the command's
    hyperparameters): member k has seed hps.seed + k and folder root/member_k."""
    root = os.path.abspath(root)
    out = []
    for k in range(count):
        seed = None if hps.get("seed") is None else hps.seed + k
        save_dir = os.path.join(root, MEMBER_FOLDER % k)
        out.append(Member(k, seed, save_dir, member_flags(hps, seed, save_dir)))
    return out


def process_flags(flag_values):
    """The PROCESS_FLAGS of the command line that differ from their defaults."""
    out = []
    for name in PROCESS_FLAGS:
        flag = flag_values[name]
        if flag.value != flag.default:
            out.append(run_flags.flag_text(name, flag.value))
    return out


def command(member, kind, extra=(), python=None):
    """The member's process: `python -m run_lfads --kind=<kind> <flags> <extra>`."""
    return [python or sys.executable, "-m", "run_lfads", "--kind=" + kind] \
        + list(member.flags) + list(extra)


def write_flagfile(member):
    """<member>/run_lfads.flags: its flags, one a line (run_lfads --flagfile=...)."""
    os.makedirs(member.save_dir, exist_ok=True)
    path = os.path.join(member.save_dir, FLAGFILE)
    with utils.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(member.flags) + "\n")
    return path


def is_finished(member):
    """True when the member's training ended (status 0) with the same flags, and its
    checkpoints are still there (the state file `checkpoint`)."""
    if not os.path.exists(os.path.join(member.save_dir, "checkpoint")):
        return False
    path = os.path.join(member.save_dir, FINISHED)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("flags") == list(member.flags)


def mark_finished(member, seconds):
    with utils.atomic_path(os.path.join(member.save_dir, FINISHED)) as tmp:
        with open(tmp, "w") as f:
            json.dump({"member": member.index, "seed": member.seed,
                       "flags": list(member.flags), "finished": time.strftime("%c"),
                       "seconds": round(seconds, 1)}, f, indent=2)
            f.write("\n")


def last_error_line(log_path, max_bytes=20000):
    """The last `error: ...` line of a log, else its last non-empty line, else ''."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            lines = [line.strip() for line in
                     f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1][:300]


def _die_with_parent(parent_pid):
    """A preexec_fn: the member gets SIGTERM (and stops cleanly, as on `kill`) when the
    command's process dies, even of SIGKILL, instead of training on unattended (Linux's
    PR_SET_PDEATHSIG; elsewhere nothing)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return None
    if os.getppid() != parent_pid:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)
    return None


class Runner:
    """Runs members' processes, `parallel` at a time, and reports each start and end.

    A failing member does not stop the others: every member runs (its failure is in
    the results), so one bad seed costs only its own run. `stop(signum)` (from a
    signal handler) starts no more members and sends SIGTERM to the running ones, which
    save nothing half-written and release their locks (run_lfads's SIGTERM handling).
    """

    # Ctrl-C reaches the members too (they share the terminal's process group): they get
    # this long to stop by themselves before SIGTERM, so that none gets a second signal
    # in the middle of its clean-up.
    SIGINT_GRACE_SECONDS = 5.0

    def __init__(self, parallel, python=None, out=print):
        self.parallel = max(1, int(parallel))
        self.python = python or sys.executable
        self.out = out
        self.running = {}  # member index -> (Member, Popen, log file, start time)
        self.stopping = None
        self.terminate_at = None  # when to send SIGTERM to the running members

    def stop(self, signum):
        self.stopping = signum
        grace = self.SIGINT_GRACE_SECONDS if signum == signal.SIGINT else 0.0
        self.terminate_at = time.time() + grace

    def _terminate(self):
        """SIGTERM to the running members, once, when stop() asked for it."""
        if self.terminate_at is None or time.time() < self.terminate_at:
            return
        self.terminate_at = None
        for _, proc, _, _ in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def _start(self, member, kind, extra):
        os.makedirs(member.save_dir, exist_ok=True)
        log_path = os.path.join(member.save_dir, LOG)
        log = open(log_path, "ab")
        argv = command(member, kind, extra, self.python)
        log.write(("\n=== %s: lfads_ensemble member %d, --kind=%s ===\n%s\n"
                   % (time.strftime("%Y-%m-%d %H:%M:%S"), member.index, kind,
                      " ".join(argv))).encode())
        log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # the log follows the run
        parent = os.getpid()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=lambda: _die_with_parent(parent))
        self.running[member.index] = (member, proc, log, time.time())
        seed = "unseeded" if member.seed is None else "seed %d" % member.seed
        self.out("member %d (%s): started %s, log %s"
                 % (member.index, seed, kind, log_path))

    def _finish(self, index, kind):
        member, proc, log, start = self.running.pop(index)
        log.close()
        seconds = time.time() - start
        status = proc.returncode
        error = None
        if status == 0:
            if kind == "train":
                mark_finished(member, seconds)
            self.out("member %d: done in %.1f min" % (index, seconds / 60))
        else:
            error = last_error_line(os.path.join(member.save_dir, LOG))
            self.out("member %d: failed (status %d) after %.1f min: %s"
                     % (index, status, seconds / 60, error))
        return Result(member, status, seconds, error)

    def run(self, members, kind, extra=(), skip_finished=False):
        """Runs every member (those finished before skipped when skip_finished);
        returns their Results in member order. Stops early after `stop`."""
        results = {}
        pending = []
        for member in members:
            if skip_finished and is_finished(member):
                self.out("member %d: finished before, skipped" % member.index)
                results[member.index] = Result(member, None, 0.0, None)
            else:
                pending.append(member)
        try:
            while pending or self.running:
                while pending and len(self.running) < self.parallel \
                        and self.stopping is None:
                    self._start(pending.pop(0), kind, extra)
                if self.stopping is not None:
                    if not self.running:
                        break
                    self._terminate()
                for index in [i for i, (_, p, _, _) in self.running.items()
                              if p.poll() is not None]:
                    results[index] = self._finish(index, kind)
                time.sleep(0.2)
        finally:
            for index in list(self.running):  # an exception here: leave no orphans
                _, proc, _, _ = self.running[index]
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait()
                results[index] = self._finish(index, kind)
        return [results[m.index] for m in members if m.index in results]
