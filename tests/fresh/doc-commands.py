#!/usr/bin/python3
"""doc-commands.py FILE - the commands of a Markdown walkthrough, as a script.

Prints a POSIX sh script made of FILE's ```sh blocks, in order, each
preceded by an echo of its line number, so that a log says which block
failed.  A block right after a line `<!-- run by: TEST -->` is left out:
TEST (a file of tests/integration/) runs it instead, and
tests/integration/test_install_doc.py checks that each such test names the
block.  `--list` prints `LINE RUNNER` for every sh block instead.

tests/fresh/run.sh runs doc/install.md this way on a pristine Debian 12
(doc/debian.md, "The fresh-machine check").
"""

import re
import sys

MARK = re.compile(r"^<!--\s*run by:\s*(\S+)\s*-->\s*$")


def blocks(text):
    """Yield (line, runner, body) for each ```sh block; runner is None for
    the fresh-machine script."""
    lines = text.split("\n")
    i = 0
    runner = None
    while i < len(lines):
        line = lines[i]
        m = MARK.match(line)
        if m:
            runner = m.group(1)
            i += 1
            continue
        fence = re.match(r"^(\s*)```(\S*)\s*$", line)
        if fence:
            indent, lang = fence.group(1), fence.group(2)
            start = i + 1
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent):] if lines[i].startswith(indent)
                            else lines[i])
                i += 1
            if lang == "sh":
                yield start, runner, "\n".join(body) + "\n"
            runner = None
            i += 1
            continue
        if line.strip():
            runner = None
        i += 1


def main(argv):
    if len(argv) == 3 and argv[1] == "--list":
        path, listing = argv[2], True
    elif len(argv) == 2:
        path, listing = argv[1], False
    else:
        sys.stderr.write("usage: doc-commands.py [--list] FILE\n")
        return 64
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for line, runner, body in blocks(text):
        if listing:
            out.append("%d %s\n" % (line, runner or "tests/fresh/run.sh"))
        elif runner is None:
            out.append("echo '=== %s line %d'\n%s" % (path, line, body))
    sys.stdout.write("".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
