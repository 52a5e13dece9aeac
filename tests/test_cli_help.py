"""`--help` of the commands: what it lists, its exit status, the flag table in docs/flags.md.

The installed `run_lfads` command runs through its console entry point, where
run_lfads.py is not absl's main module; these tests run it from outside the source
folder as users do. Help runs import no TensorFlow, so each takes about a second.
"""
import ast
import concurrent.futures
import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

from lfads_tf2 import cli
import run_lfads
from lfads_tf2.train import flags as run_flags

# Citations of the specification, issues or questions: not for users' eyes.
CITATION = re.compile(r"\bspec\b|\bspecification\b|§|\bQ\d+\b|\bissues? ?#?\d+|\(issue\b"
                      r"|\bquestion \d+", re.IGNORECASE)
FLAG_LINE = re.compile(r"^  --(?:\[no\])?(\w+) \((\w+), default: (.*)\)$")
HEADING = re.compile(r"^(\S.*):$")


def _env():
    """This checkout's modules first, even for a command installed from another checkout
    of the same environment (`from run_lfads import console_main` then finds this one)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _run(cmd, cwd):
    return subprocess.run(cmd, cwd=str(cwd), env=_env(), capture_output=True, text=True,
                          timeout=120)


def installed_command(name):
    """Path of an installed console command: next to this Python, else on PATH.

    `pip install -e ".[test]"` (CI) installs it, so there a missing command fails."""
    for path in (os.path.join(os.path.dirname(sys.executable), name), shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("console command %r is not installed (pip install -e .)" % name)
    pytest.skip("console command %r is not installed here" % name)


def console_scripts():
    """[(command, module, function)] of setup.py's console_scripts."""
    text = open(os.path.join(ROOT, "setup.py")).read()
    block = re.search(r'"console_scripts"\s*:\s*\[(.*?)\]', text, re.S).group(1)
    return re.findall(r'"\s*([\w-]+)\s*=\s*([\w.]+):(\w+)\s*"', block)


def help_groups(text):
    """[(heading, [flag names])] of a help text; headings without flags are left out."""
    groups, title = [], None
    for line in text.splitlines():
        heading = HEADING.match(line)
        if heading:
            title = heading.group(1)
            continue
        flag = FLAG_LINE.match(line)
        if flag:
            if not groups or groups[-1][0] != title:
                groups.append((title, []))
            groups[-1][1].append(flag.group(1))
    return groups


def flag_table_groups():
    """[(heading, [flag names])] of the flag tables in docs/flags.md."""
    text = open(os.path.join(ROOT, "docs", "flags.md")).read()
    table = text.split("<!-- flags:start -->", 1)[1].split("<!-- flags:end -->", 1)[0]
    groups = []
    for line in table.splitlines():
        if line.startswith("### "):
            groups.append((line[4:].strip(), []))
        elif line.startswith("| `--"):
            groups[-1][1].append(re.match(r"\| `--(\w+)`", line).group(1))
    return groups


@pytest.fixture(scope="module")
def command_help(tmp_path_factory):
    """`run_lfads --help` of the installed command, run outside the source folder."""
    proc = _run([installed_command("run_lfads"), "--help"], tmp_path_factory.mktemp("cwd"))
    return proc


def test_installed_command_help_lists_every_flag(command_help):
    proc = command_help
    assert proc.returncode == 0, proc.stderr
    for name in ("co_dim", "kind", "seed"):
        assert re.search(r"^  --%s \(" % name, proc.stdout, re.M), name
    listed = [name for _, names in help_groups(proc.stdout) for name in names]
    assert listed == [name for _, names in run_flags.FLAG_GROUPS for name in names]
    assert sorted(listed) == sorted(run_flags.defined_flag_names())
    assert proc.stdout.startswith("run_lfads: LFADS"), proc.stdout[:200]


def test_script_and_installed_command_print_the_same_help(command_help):
    script = _run([sys.executable, "run_lfads.py", "--help"], ROOT)
    assert script.returncode == 0, script.stderr
    assert script.stdout == command_help.stdout


@pytest.mark.parametrize("arg", ["--help", "-h", "-?", "--helpshort", "--helpfull"])
def test_help_flags_exit_0(arg, tmp_path):
    proc = _run([sys.executable, os.path.join(ROOT, "run_lfads.py"), arg], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    names = [name for _, names in help_groups(proc.stdout) for name in names]
    assert set(run_flags.defined_flag_names()) <= set(names)
    # --helpfull adds absl's own flags (e.g. --logtostderr), the short help does not
    assert ("logtostderr" in names) == (arg == "--helpfull")


def test_help_entries_show_type_default_and_meaning():
    text = cli.help_text(run_flags.DESCRIPTION, run_flags.FLAG_GROUPS)
    assert "  --co_dim (int, default: 1)\n      Number of inferred inputs" in text
    assert "  --[no]do_causal_controller (bool, default: false)\n" in text
    entries = {m.group(1): (m.group(2), m.group(3))
               for m in map(FLAG_LINE.match, text.splitlines()) if m}
    for name in run_flags.defined_flag_names():
        flag = run_lfads.FLAGS[name]
        assert entries[name] == (flag.flag_type(), cli.default_text(flag)), name
        first_words = " ".join(flag.help.split()[:4])
        assert first_words in " ".join(text.split()), (name, first_words)


@pytest.mark.parametrize("arg, line", [
    ("--co_dimm=2", "error: unknown flag --co_dimm (did you mean --co_dim?)"),
    ("--factor_dim=3", "error: unknown flag --factor_dim (did you mean --factors_dim?)"),
    ("--co_dim=abc", "error: --co_dim=abc: expected an integer"),
    ("--do_causal_controller=maybe",
     "error: --do_causal_controller=maybe: expected true or false"),
])
def test_bad_flag_is_one_line_with_status_2(arg, line, tmp_path):
    proc = _run([sys.executable, os.path.join(ROOT, "run_lfads.py"), arg], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [line]
    assert proc.stdout == ""


def test_every_flag_is_in_exactly_one_group():
    names = [name for _, names in run_flags.FLAG_GROUPS for name in names]
    assert sorted(names) == sorted(run_flags.defined_flag_names())
    groups = cli.complete_groups(run_flags.FLAG_GROUPS, sys.modules["run_lfads"])
    assert "Other flags" not in [title for title, _ in groups]


def test_flag_table_and_help_list_the_same_flags_in_the_same_groups():
    text = cli.help_text(run_flags.DESCRIPTION, run_flags.FLAG_GROUPS)
    assert help_groups(text) == flag_table_groups()
    assert len(flag_table_groups()) == len(run_flags.FLAG_GROUPS) > 1


@pytest.mark.parametrize("command, module, function", console_scripts())
def test_every_console_command_has_help(command, module, function, tmp_path):
    """What the console script runs (`sys.exit(module.function())`, module not __main__):
    --help lists every flag of the module and exits 0."""
    code = "import sys, %s as m; sys.argv[0] = %r; sys.exit(m.%s())" % (
        module, command, function)
    proc = _run([sys.executable, "-c", code, "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    listed = {name for _, names in help_groups(proc.stdout) for name in names}
    command_module = importlib.import_module(module)
    # run_lfads's flags are defined in the package (lfads_tf2.train.flags)
    defined = cli.module_flag_names(getattr(command_module, "run_flags", command_module))
    assert defined and set(defined) <= listed


def test_new_command_gets_grouped_help_for_free(tmp_path):
    """A new command that calls cli.run: grouped help, status 0, and a flag that
    no group names is still listed."""
    (tmp_path / "lfads_demo.py").write_text(textwrap.dedent('''\
        import sys
        from absl import flags
        from lfads_tf2 import cli
        flags.DEFINE_integer("alpha", 3, "The alpha.")
        flags.DEFINE_string("beta", "b", "The beta.")
        flags.DEFINE_boolean("gamma", True, "The gamma.")

        def main(argv):
            print("ran with alpha=%d" % flags.FLAGS.alpha)

        def console_main():
            cli.run(main, "lfads_demo: a demo.", [("Numbers", ["alpha"]),
                                                        ("Words", ["beta"])],
                          module=sys.modules[__name__])
        '''))
    code = "import sys, lfads_demo; sys.exit(lfads_demo.console_main())"
    env_dir = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code, "--help"], cwd=env_dir, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("lfads_demo: a demo.\n")
    assert help_groups(proc.stdout) == [("Numbers", ["alpha"]), ("Words", ["beta"]),
                                        ("Other flags", ["gamma"])]
    ran = subprocess.run([sys.executable, "-c", code, "--alpha=7"], cwd=env_dir, env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout == "ran with alpha=7\n", ran.stderr
    bad = subprocess.run([sys.executable, "-c", code, "--alpah=7"], cwd=env_dir, env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["error: unknown flag --alpah (did you mean --alpha?)"]


def test_setup_installs_every_top_level_module():
    """A module missing from py_modules works from the source folder but not installed."""
    text = open(os.path.join(ROOT, "setup.py")).read()
    listed = set(re.findall(r'"(\w+)"', re.search(r"py_modules=\[(.*?)\]", text, re.S).group(1)))
    modules = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "*.py"))}
    assert modules - {"setup"} <= listed
    # Only the four top-level modules the design fixes: the rest is in lfads_tf2, so an
    # install claims no generic names such as `training` beside a user's own.
    assert listed == {"run_lfads", "lfads", "distributions", "utils"}
    packages = set(re.findall(r'"(\w+)"', re.search(r"packages=\[(.*?)\]", text, re.S).group(1)))
    folders = {os.path.basename(os.path.dirname(p))
               for p in glob.glob(os.path.join(ROOT, "*", "__init__.py"))}
    assert folders and folders <= packages


def test_import_command_takes_two_arguments(tmp_path):
    """lfads_import_original SRC OUT: another number of arguments, or a SRC that is not
    there, is one line on stderr with status 2 (before any TensorFlow work)."""
    code = textwrap.dedent("""\
        import sys
        from lfads_tf2.train import import_original as m
        try:
            m.console_main()
        finally:
            print("tensorflow imported: %s" % ("tensorflow" in sys.modules))
        """)
    for args, expected in ((["only_src"], "error: expected two arguments, SRC and OUT, got 1"),
                           ([str(tmp_path / "nothing"), str(tmp_path / "out")],
                            "error: %s: no such folder or file" % (tmp_path / "nothing"))):
        proc = _run([sys.executable, "-c", code] + args, tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines()[-1].startswith(expected), proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stdout == "tensorflow imported: False\n"
        assert not os.path.exists(tmp_path / "out")


def _scripts():
    """Every script with a command line: scripts/*.py and the synth_data generators."""
    paths = sorted(glob.glob(os.path.join(ROOT, "scripts", "*.py")))
    for path in sorted(glob.glob(os.path.join(ROOT, "synth_data", "*.py"))):
        if '__name__ == "__main__"' in open(path).read():
            paths.append(path)
    return paths


def test_user_visible_text_cites_no_specification_or_issue(command_help, tmp_path):
    """--help of every command and script and the README files say what the original does,
    without citing the specification, issues or question numbers."""
    texts = {"run_lfads --help": command_help.stdout}
    cmds = {"run_lfads.py --helpfull": [sys.executable, os.path.join(ROOT, "run_lfads.py"),
                                        "--helpfull"]}
    for path in _scripts():
        cmds[os.path.relpath(path, ROOT) + " --help"] = [sys.executable, path, "--help"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        procs = dict(zip(cmds, pool.map(lambda c: _run(c, tmp_path), cmds.values())))
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.stderr[-500:])
        assert proc.stdout.strip(), name
        texts[name] = proc.stdout + proc.stderr
    for readme in ("README.md", os.path.join("synth_data", "README.md")):
        texts[readme] = open(os.path.join(ROOT, readme)).read()
    found = ["%s: %r" % (name, m.group(0)) for name, text in texts.items()
             for m in CITATION.finditer(text)]
    assert not found, found


def test_messages_in_the_code_cite_no_specification_or_issue():
    """String literals that can reach users (flag help, errors, notes, printed lines):
    every string in the code but function, class and library-module docstrings."""
    found = []
    # the package and its subpackages (data, model, train, evaluate, score, search)
    library = glob.glob(os.path.join(ROOT, "lfads_tf2", "**", "*.py"), recursive=True)
    for path in sorted(glob.glob(os.path.join(ROOT, "*.py")) + library + _scripts()):
        tree = ast.parse(open(path).read())
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                 ast.Module)) and ast.get_docstring(node) is not None:
                docstrings.add(id(node.body[0].value))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and CITATION.search(node.value)):
                found.append("%s:%d: %r" % (os.path.relpath(path, ROOT), node.lineno,
                                            CITATION.search(node.value).group(0)))
    assert not found, found


def test_lfads_tune_help_lists_its_flags_and_run_lfads_flags_without_tensorflow_or_ray(
        tmp_path):
    """lfads_tune --help: its own flags first, then every run_lfads flag (each trial starts
    from them), and which flags a search may set; quick, so neither TensorFlow nor Ray is
    imported for it."""
    code = textwrap.dedent("""\
        import sys
        from lfads_tf2.search import lfads_tune as m
        sys.argv[0] = "lfads_tune"
        try:
            m.console_main()
        finally:
            print("imported: %s" % [x for x in ("tensorflow", "ray") if x in sys.modules])
        """)
    proc = _run([sys.executable, "-c", code, "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    groups = dict(help_groups(proc.stdout))
    assert groups["Search"][:2] == ["search_space", "search"]
    assert "ray_address" in groups["Ray"]
    assert groups["run_lfads: Data"] == dict(run_flags.FLAG_GROUPS)["Data"]
    listed = {name for names in groups.values() for name in names}
    assert set(run_flags.defined_flag_names()) <= listed
    assert "Searchable flags: ic_dim," in proc.stdout
    assert proc.stdout.rstrip().endswith("imported: []")
