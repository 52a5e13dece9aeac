"""Writes the tables of run_lfads flags in docs/flags.md from the flag definitions.

    python scripts/make_flag_table.py          # rewrite the table in docs/flags.md
    python scripts/make_flag_table.py --check  # exit 1 if docs/flags.md is out of date

The tables sit between the markers `<!-- flags:start -->` and `<!-- flags:end -->`;
tests/test_readme.py runs --check so the table cannot drift from the code.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

START, END = "<!-- flags:start -->", "<!-- flags:end -->"
FLAGS_DOC = os.path.join(ROOT, "docs", "flags.md")


def flag_table():
    """Markdown: one table (flag, type, default, meaning) per group of run_flags.FLAG_GROUPS,
    the groups of `run_lfads --help`; new flags' meanings start with "New:"."""
    from lfads_tf2 import cli
    import run_lfads
    from lfads_tf2.train import flags as run_flags
    flags = run_lfads.FLAGS
    parts = []
    for title, names in cli.complete_groups(run_flags.FLAG_GROUPS,
                                                  sys.modules["run_lfads"]):
        parts += ["### " + title, "", "| flag | type | default | meaning |", "|---|---|---|---|"]
        for name in names:
            flag = flags[name]
            help_text = cli.one_line(flag.help).replace("|", "\\|")
            parts.append("| `--%s` | %s | `%s` | %s |" % (
                name, flag.flag_type(), cli.default_text(flag), help_text))
        parts.append("")
    return "\n".join(parts[:-1])


def updated_doc(text):
    if START not in text or END not in text:
        raise SystemExit("docs/flags.md lacks the %s / %s markers" % (START, END))
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + flag_table() + "\n" + END + tail


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    unknown = [a for a in argv if a != "--check"]
    if unknown:
        print("error: unknown argument %s (expected nothing or --check)" % unknown[0],
              file=sys.stderr)
        return 2
    text = open(FLAGS_DOC).read()
    new = updated_doc(text)
    if "--check" in argv:
        if new != text:
            print("docs/flags.md flag table is out of date: "
                  "run python scripts/make_flag_table.py")
            return 1
        print("docs/flags.md flag table is current")
        return 0
    with open(FLAGS_DOC, "w") as f:
        f.write(new)
    print("docs/flags.md flag table written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
