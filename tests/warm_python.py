"""A `python` for tests that start many Python processes: TensorFlow imported once.

Importing TensorFlow takes 6-8 s of CPU on the CI machines, more than most of the
commands the README-examples script runs. This module serves `python ARGS...` from a
process that imported TensorFlow, NumPy and h5py once and forks a child per command:

    python tests/warm_python.py serve SOCKET        # the server (a test fixture starts it)
    python tests/warm_python.py run SOCKET ARGS...  # the client: `python ARGS...`, warm

Each command is still a process of its own: the child gets the client's stdin, stdout
and stderr (passed over the Unix socket), working folder and environment, runs
`script.py args` or `-m module args` as its `__main__` with the argv and module search
path Python would give it (conftest.set_command_search_path), and the client exits with
the child's status (a child killed by a signal kills the client with it). What differs from
a cold `python`: the modules above are already imported (TensorFlow with the
environment the server started with; a PYTHONPATH of the command's applies to every
other import), and so are pytest and tests/conftest.py, so import-time behaviour is not
what a test through this interpreter checks. Interpreter options (`-c`, `-u`, ...) run
a cold interpreter.

`start(folder)` starts a server and writes an executable `folder/python` that runs the
client, for scripts that take the interpreter from $PYTHON; `.python()` waits for the
server and returns that executable's path, `.stop()` ends the server.
"""
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

PRELOAD = ("tensorflow", "numpy", "h5py")
MAX_FDS = 3
_HEADER = struct.Struct("!I")


# ------------------------------------------------------------------ the client
def _cold(args):
    os.execv(sys.executable, [sys.executable] + list(args))


def _warm_form(args):
    """('path', script) or ('module', name) when args are `script ...` or `-m mod ...`."""
    if not args:
        return None
    if args[0] == "-m" and len(args) > 1:
        return "module", args[1]
    if not args[0].startswith("-"):
        return "path", args[0]
    return None


def client(sock_path, args):
    if _warm_form(args) is None:
        _cold(args)
    payload = json.dumps({"argv": list(args), "cwd": os.getcwd(),
                          "env": dict(os.environ)}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(sock_path)
    except OSError:
        _cold(args)  # no server (any more): the same command, cold
    socket.send_fds(conn, [_HEADER.pack(len(payload)) + payload], [0, 1, 2])
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            sys.exit("warm_python: the server ended before the command did")
        reply += chunk
    status = int(reply)
    if status < 0:  # killed by a signal: die of it too, as the shell expects
        try:
            signal.signal(-status, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP keep theirs
        os.kill(os.getpid(), -status)
        time.sleep(1)
    sys.exit(status)


# ------------------------------------------------------------------ the server
def _recv_request(conn):
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, MAX_FDS)
    if len(data) < _HEADER.size or len(fds) != MAX_FDS:
        raise ValueError("bad request")
    (size,) = _HEADER.unpack(data[:_HEADER.size])
    body = data[_HEADER.size:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("request cut short")
        body += chunk
    return json.loads(body), fds


def _print_exception(e):
    """The traceback Python prints, without this module's and runpy's frames."""
    tb = e.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or "runpy" in tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    sys.excepthook(type(e), e, tb)


def _run_command(request, fds, base_path):
    """In the forked child: becomes `python argv...` and never returns."""
    import atexit
    import runpy
    import conftest
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    # the standard streams Python would have made for these descriptors
    unbuffered = os.environ.get("PYTHONUNBUFFERED", "") != ""
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False),
                                  line_buffering=os.isatty(1), write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), line_buffering=True,
                                  errors="backslashreplace")
    kind, target = _warm_form(request["argv"])
    rest = request["argv"][2:] if kind == "module" else request["argv"][1:]
    if kind == "path":
        first = os.path.dirname(os.path.realpath(target))
        sys.argv = [target] + rest
    else:
        first = os.getcwd()
        sys.argv = ["-m"] + rest  # runpy puts the module's file in argv[0]
    conftest.set_command_search_path(first, request["env"], base_path)
    code = 0
    try:
        try:
            if kind == "path":
                runpy.run_path(target, run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
        finally:
            atexit._run_exitfuncs()
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code & 0xFF
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt as e:
        _print_exception(e)
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException as e:  # noqa: BLE001 - the interpreter's own top level
        _print_exception(e)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe, as Python ignores it
            pass
    os._exit(code)


def _handle(conn, base_path):
    """In a child of the server, for one connection: forks the command, reports its
    status; kills the command if the client goes away first."""
    import select
    try:
        request, fds = _recv_request(conn)
    except (ValueError, OSError):
        os._exit(1)
    pid = os.fork()
    if pid == 0:
        try:
            conn.close()
            _run_command(request, fds, base_path)
        finally:
            os._exit(1)  # never back into the server's code
    for fd in fds:
        os.close(fd)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        readable, _, _ = select.select([conn], [], [], 0.1)
        if readable and not conn.recv(1):  # the client is gone: so is its command
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            os._exit(0)
    try:
        conn.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
    except OSError:
        pass
    os._exit(0)


def serve(sock_path):
    # first, while the module search path is still the one the interpreter built: the
    # end of every command's path (each puts its own first entry and PYTHONPATH in
    # front; conftest.py is the one file of the tests that sets the path)
    import conftest
    base_path = conftest.interpreter_search_path()
    # TensorFlow's start-up chatter goes where a quiet import sends it
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        for name in PRELOAD:
            __import__(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    listener.settimeout(1.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        while os.getppid() == parent:  # ends with the test session that started it
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                conn = None
            if conn is not None:
                conn.settimeout(None)
                sys.stdout.flush()
                sys.stderr.flush()
                if os.fork() == 0:
                    try:
                        listener.close()
                        _handle(conn, base_path)
                    finally:
                        os._exit(1)  # never back into the server's loop
                conn.close()
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                pass
    finally:
        listener.close()
        if os.path.exists(sock_path):
            os.remove(sock_path)


# ------------------------------------------------------------------ for tests
class Server:
    """A server being started (its import runs beside the caller) and the `python`
    executable that talks to it; `python()` waits until it is ready."""

    def __init__(self, folder, env=None):
        os.makedirs(folder, exist_ok=True)
        self.socket = os.path.join(folder, "warm_python.sock")
        self.executable = os.path.join(folder, "python")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", self.socket],
            stdout=subprocess.PIPE, env=env, text=True)
        self._ready = False
        self._lock = threading.Lock()
        with open(self.executable, "w") as f:
            f.write('#!/bin/sh\nexec "%s" "%s" run "%s" "$@"\n'
                    % (sys.executable, os.path.abspath(__file__), self.socket))
        os.chmod(self.executable, 0o755)

    def python(self):
        with self._lock:
            if not self._ready:
                line = self.proc.stdout.readline()
                if line.strip() != "ready":
                    self.stop()
                    raise RuntimeError("warm_python server did not start: %r" % line)
                self._ready = True
        return self.executable

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def start(folder, env=None):
    return Server(folder, env)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        client(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
