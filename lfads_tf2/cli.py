"""Help and flag errors of the LFADS commands (`run_lfads` and any later `lfads_*` command).

absl's `app.run` prints help only for the flags of the `__main__` module (none when the
command runs through a console entry point), heads it with `__main__`'s docstring and
exits with status 1. A command that starts with

    cli.run(main, description=DESCRIPTION, groups=FLAG_GROUPS, module=THIS_MODULE)

instead gets:

* `--help`, `-h`, `-?`, `--helpshort`: the description, then every flag of the command
  with its type, default and meaning, under the titles of `groups`; status 0;
* `--helpfull`: the same plus absl's own flags (logging, debugging); status 0;
* a bad flag (unknown name, bad value): one line on stderr, the nearest known flag
  for a misspelt name, status 2;
* the same text whether the command runs as an installed console command or as
  `python script.py`.
"""
import os
import sys
import textwrap

from absl import app
from absl import flags

from lfads_tf2.errors import CommandError

FLAGS = flags.FLAGS

SHORT_HELP_ARGS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")
FULL_HELP_ARGS = ("--helpfull", "-helpfull")
XML_HELP_ARGS = ("--helpxml", "-helpxml")
_TRUE = ("true", "t", "1")

WIDTH = 88


def default_text(flag):
    """A flag's default as users write it: true/false, "" for empty, MAX_INT, (none)."""
    default = flag.default
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None:
        return "(none)"
    if isinstance(default, int) and default == sys.maxsize:
        return "MAX_INT"
    if default == "":
        return '""'
    return str(default)


def one_line(text):
    """Collapses whitespace (flag help written over several source lines)."""
    return " ".join(str(text).split())


def help_request(argv):
    """'short', 'full', 'xml' or None: the help flag among argv[1:] (before a `--`)."""
    for arg in argv[1:]:
        if arg == "--":
            return None
        name, eq, value = arg.partition("=")
        if eq and value.lower() not in _TRUE:
            continue  # e.g. --help=false: not a request
        if name in SHORT_HELP_ARGS:
            return "short"
        if name in FULL_HELP_ARGS:
            return "full"
        if name in XML_HELP_ARGS:
            return "xml"
    return None


def module_flag_names(module):
    """Names of the flags `module` defines, in definition order."""
    return [f.name for f in FLAGS.get_flags_for_module(module)]


def complete_groups(groups, module=None):
    """`groups` plus an "Other flags" group for flags of `module` that no group names,
    so that no flag of the command is ever missing from its help."""
    groups = [(title, list(names)) for title, names in groups]
    if module is not None:
        named = {name for _, names in groups for name in names}
        rest = [name for name in module_flag_names(module) if name not in named]
        if rest:
            groups.append(("Other flags", rest))
    return groups


def _flag_entry(flag):
    """Two or more lines: `--name (type, default: value)` and the wrapped meaning."""
    if flag.flag_type() == "bool":
        head = "  --[no]%s (bool, default: %s)" % (flag.name, default_text(flag))
    else:
        head = "  --%s (%s, default: %s)" % (flag.name, flag.flag_type(), default_text(flag))
    body = textwrap.fill(one_line(flag.help), width=WIDTH, initial_indent="      ",
                         subsequent_indent="      ")
    return head + "\n" + body


def help_text(description, groups, module=None, full=False):
    """The help of a command: description, then its flags group by group."""
    parts = [description.strip("\n"), ""]
    shown = set()
    for title, names in complete_groups(groups, module):
        parts.append(title + ":")
        for name in names:
            parts.append(_flag_entry(FLAGS[name]))
            shown.add(name)
        parts.append("")
    if full:
        parts.append("Flags of absl, the flag library (logging, debugging):")
        by_module = FLAGS.flags_by_module_dict()
        others = sorted({f.name for mod_flags in by_module.values() for f in mod_flags}
                        - shown)
        for name in others:
            parts.append(_flag_entry(FLAGS[name]))
        parts.append("")
    else:
        parts.append("--helpfull also lists the flags of absl, the flag library "
                     "(logging, debugging).")
    return "\n".join(parts) + "\n"


def _write_stdout(text):
    """Writes to stdout; a closed pipe (`run_lfads --help | head`) is not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush at exit; point stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def flag_error_line(error, prog):
    """One line for an absl flag error, e.g. an unknown name with its nearest flags."""
    if isinstance(error, flags.UnrecognizedFlagError):
        line = "unknown flag --%s" % error.flagname
        nearest = nearest_flag(error.flagname)
        if nearest:
            line += " (did you mean --%s?)" % nearest
        else:
            line += " (%s --help lists the flags)" % prog
        return line
    text = one_line(error)
    if not text.startswith("flag --"):
        return text
    text = text[len("flag "):]
    # absl words a value of the wrong type as Python does ("invalid literal for int()
    # with base 10: 'abc'"); say which type the flag takes instead.
    setting, _, reason = text.partition(": ")
    name = setting[2:].split("=", 1)[0]
    expected = {"int": "an integer", "float": "a number", "bool": "true or false"}
    if name in FLAGS and FLAGS[name].flag_type() in expected and any(
            x in reason for x in ("invalid literal", "could not convert", "Non-boolean")):
        return "%s: expected %s" % (setting, expected[FLAGS[name].flag_type()])
    return text


def nearest_flag(name):
    """The known flag name closest to `name`, or None if none is close."""
    import difflib
    if name.startswith("no") and name[2:] in FLAGS:
        name = name[2:]  # --nofoo for a flag foo that is not boolean
    close = difflib.get_close_matches(name, list(FLAGS), n=1, cutoff=0.7)
    return close[0] if close else None


def make_flags_parser(description, groups, module=None):
    """A `flags_parser` for absl's app.run: help (status 0) and one-line errors (2)."""
    def parse(argv):
        request = help_request(argv)
        if request == "xml":
            FLAGS.write_help_in_xml_format(sys.stdout)
            sys.exit(0)
        if request is not None:
            _write_stdout(help_text(description, groups, module, full=request == "full"))
            sys.exit(0)
        try:
            return FLAGS(argv)
        except flags.Error as e:
            prog = os.path.basename(argv[0]) if argv else "command"
            print("error: " + flag_error_line(e, prog), file=sys.stderr)
            sys.exit(2)
    return parse


_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


def positional_args(argv, names, command):
    """argv[1:] (what absl leaves after the flags), which must hold exactly the
    arguments `names` (e.g. ["SRC", "OUT"]); else a CommandError naming them."""
    args = argv[1:]
    if len(args) != len(names):
        raise CommandError("expected %s arguments, %s, got %d (%s --help shows the usage)"
                           % (_COUNT_WORDS.get(len(names), len(names)), " and ".join(names),
                              len(args), command))
    return args


def run(main, description, groups, module=None, argv=None, errors=()):
    """Runs `main` as absl's app.run does, with the help and flag errors above.

    description: text shown first by --help (what the command does, an example).
    groups: [(title, [flag name, ...]), ...], the order of the help.
    module: the module that defines the command's flags; any of them missing from
        `groups` are listed under "Other flags".
    errors: exception classes that, like CommandError, end the command with one
        line on stderr and status 2 (the problems of user input it reports).
    """
    def main_with_one_line_errors(args):
        try:
            return main(args)
        except (CommandError,) + tuple(errors) as e:
            print("error: %s" % e, file=sys.stderr)
            return 2

    app.run(main_with_one_line_errors, argv=argv,
            flags_parser=make_flags_parser(description, groups, module))
