"""What bench/report.py and bench/resilience_report.py share: reading a run's raw outputs,
Markdown tables and their verdict column, ending a section with the run's notes, and the
command line that prints the section and writes it into a Markdown file (a section with the
same heading is replaced, otherwise it is appended at the end).

Python 3 standard library only.
"""

import argparse
import json
import os
import re


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_json(path):
    """The last line of `path` as JSON; {} when it is missing, empty or not JSON."""
    text = read(path).strip()
    try:
        return json.loads(text.splitlines()[-1]) if text else {}
    except ValueError:
        return {}


class Run:
    """A run directory: its raw outputs by file name, and its meta.json (written by
    bench/lib.sh's write_meta)."""

    def __init__(self, path):
        self.path = path
        self.meta = self.json("meta.json")

    def text(self, name):
        return read(os.path.join(self.path, name))

    def json(self, name):
        return read_json(os.path.join(self.path, name))


def verdict(ok):
    """The "met" column: yes, **no**, or n/a when it could not be measured."""
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def table(header, rows):
    """A Markdown table's lines: the `header` cells, then each row's, padded with empty cells
    to the header's width."""
    def line(cells):
        cells = list(cells) + [""] * (len(header) - len(cells))
        return "|" + "".join(f" {c} |" if c else " |" for c in cells)

    return [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]


def with_notes(lines, meta):
    """The section's `lines`, then meta.json's notes as a list, joined into its text."""
    notes = meta.get("notes") or []
    if notes:
        lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def write_docs(path, section):
    heading = section.splitlines()[0]
    text = read(path)
    if not text:
        text = "# Benchmarks\n"
    parts = re.split(r"(?m)^(?=#{2,3} )", text)
    replaced = False
    for i, part in enumerate(parts):
        if part.splitlines() and part.splitlines()[0] == heading:
            parts[i] = section.rstrip("\n") + "\n\n"
            replaced = True
    if not replaced:
        if not parts[-1].endswith("\n\n"):
            parts[-1] = parts[-1].rstrip("\n") + "\n\n"
        parts.append(section.rstrip("\n") + "\n")
    text = "".join(parts).rstrip("\n") + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(doc, build):
    """Prints the lines `build(Run(RUN))` gives, then the run's notes, and with --docs FILE
    writes them into FILE; `doc` is the script's docstring, whose first paragraph is its
    --help description."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("run", help="directory holding the run's raw outputs")
    parser.add_argument("--docs", help="Markdown file to append the section to (or replace it in)")
    args = parser.parse_args()
    run = Run(args.run)
    section = with_notes(build(run), run.meta)
    print(section)
    if args.docs:
        write_docs(args.docs, section)
    return 0
