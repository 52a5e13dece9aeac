"""Writes the README's table of run_lfads.py flags from the flag definitions.

    python scripts/make_flag_table.py          # rewrite the table in README.md
    python scripts/make_flag_table.py --check  # exit 1 if README.md is out of date

The table sits between the markers `<!-- flags:start -->` and `<!-- flags:end -->`;
tests/test_readme.py runs --check so the table cannot drift from the code.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

START, END = "<!-- flags:start -->", "<!-- flags:end -->"
README = os.path.join(ROOT, "README.md")


def flag_table():
    """Markdown table: flag, type, default, meaning; new flags marked."""
    import run_lfads
    flags = run_lfads.FLAGS
    rows = ["| flag | type | default | meaning |", "|---|---|---|---|"]
    for name in run_lfads.defined_flag_names():
        flag = flags[name]
        default = flag.default
        if isinstance(default, bool):
            default = "true" if default else "false"
        elif default is None:
            default = "(none)"
        elif default == run_lfads.MAX_INT:
            default = "MAX_INT"
        elif default == "":
            default = '""'
        kind = flag.flag_type()
        help_text = " ".join(flag.help.split()).replace("|", "\\|")
        rows.append("| `--%s` | %s | `%s` | %s |" % (name, kind, default, help_text))
    return "\n".join(rows)


def updated_readme(text):
    if START not in text or END not in text:
        raise SystemExit("README.md lacks the %s / %s markers" % (START, END))
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + flag_table() + "\n" + END + tail


def main(argv):
    text = open(README).read()
    new = updated_readme(text)
    if "--check" in argv:
        if new != text:
            print("README.md flag table is out of date: run python scripts/make_flag_table.py")
            return 1
        print("README.md flag table is current")
        return 0
    with open(README, "w") as f:
        f.write(new)
    print("README.md flag table written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
