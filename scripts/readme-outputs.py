#!/usr/bin/env python3
"""Regenerates the command outputs that README.md quotes, from the current build.

A quoted output is the fenced block right after a marker line

    <!-- output: NAME -->

and NAME is one of the commands below. Each runs the release binary in a scratch
directory laid out like a checkout (experiments/, data/ linked), so the paths it prints
are the ones a user sees.

Usage:
    scripts/readme-outputs.py            rewrite every quoted block in README.md
    scripts/readme-outputs.py --check    exit 1, with a diff, when a block is out of date
    scripts/readme-outputs.py NAME...    only these blocks

Durations ("5.7s", "12 s", "1m 3s") differ from run to run; --check ignores them, and a
rewrite keeps the README's own where only they differ. The numbers come from training,
so they are those of the machine the script runs on: the same machine gives the same
numbers at any thread count, another CPU may differ in the last digits.
"""

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- output: ([a-z0-9-]+) -->$")
DURATION = re.compile(r"\b(\d+m )?\d+(\.\d+)? ?s\b")

QUICKSTART_RUN = "results/quickstart/smoothing=0.1_744862da/predictions.safetensors"

# NAME: (the commands whose stdout is quoted, what must have run before)
BLOCKS = {
    "quickstart": (["run experiments/quickstart.json"], []),
    "calibrate": (
        [f"calibrate {QUICKSTART_RUN} --fit {QUICKSTART_RUN} --method temperature,isotonic"],
        ["run experiments/quickstart.json"],
    ),
    "tour-run": (["run experiments/tour.json --jobs 2"], []),
    "tour-report": (
        ["report results/tour --metrics accuracy,nll,ece,ece_scaled,temperature,logit_gap"],
        ["run experiments/tour.json --jobs 2"],
    ),
    "tour-runs": (
        ["runs results/tour --where 'swept.loss.smoothing > 0' --sort -metrics.test.accuracy"],
        ["run experiments/tour.json --jobs 2"],
    ),
}


def mask(text):
    return DURATION.sub("<duration>", text)


class Sandbox:
    """A scratch checkout: experiments/ copied, data/ linked, results/ empty."""

    def __init__(self, binary):
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="smoothlab-readme-"))
        shutil.copytree(ROOT / "experiments", self.dir / "experiments")
        data = ROOT / "data"
        if data.exists():
            os.symlink(data.resolve(), self.dir / "data")
        self.done = set()

    def run(self, args):
        command = f"{self.binary} {args}"
        result = subprocess.run(
            command, shell=True, cwd=self.dir, capture_output=True, text=True
        )
        if result.returncode != 0:
            sys.exit(f"error: `smoothlab {args}` exited {result.returncode}:\n{result.stderr}")
        self.done.add(args)
        return result.stdout

    def output(self, name):
        commands, needs = BLOCKS[name]
        for need in needs:
            if need not in self.done:
                self.run(need)
        return "".join(self.run(c) for c in commands)

    def close(self):
        shutil.rmtree(self.dir)


def quoted_blocks(lines):
    """(name, first line of the block's body, line after its closing fence) per marker."""
    for i, line in enumerate(lines):
        found = MARKER.match(line)
        if not found:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            sys.exit(f"error: README.md:{i + 1}: the marker is not followed by a fenced block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j] == "```"), None)
        if end is None:
            sys.exit(f"error: README.md:{i + 2}: the fenced block is not closed")
        yield found.group(1), i + 2, end


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BLOCKS]
    if unknown:
        sys.exit(f"error: unknown block(s) {unknown}; the blocks: {', '.join(BLOCKS)}")

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    sandbox = Sandbox(target / "release" / "smoothlab")
    lines = README.read_text().split("\n")
    stale = []
    replacements = []
    try:
        # In the README's order, so that a block's prerequisites run as it says.
        for name, body, end in quoted_blocks(lines):
            if name not in BLOCKS:
                sys.exit(f"error: README.md:{body - 1}: unknown block `{name}`")
            if args.names and name not in args.names:
                continue
            old = "\n".join(lines[body:end])
            new = sandbox.output(name).rstrip("\n")
            if mask(old) == mask(new):
                continue
            stale.append(name)
            replacements.append((body, end, new))
            if args.check:
                diff = difflib.unified_diff(
                    old.split("\n"), new.split("\n"), f"README.md ({name})", "now", lineterm=""
                )
                print("\n".join(diff))
    finally:
        sandbox.close()
    # From the last block up, so that earlier line numbers stay valid.
    for body, end, new in reversed(replacements):
        lines[body:end] = new.split("\n")
    if args.check:
        print(f"{len(stale)} quoted output(s) out of date" + (f": {', '.join(stale)}" if stale else ""))
        sys.exit(1 if stale else 0)
    README.write_text("\n".join(lines))
    print(f"rewrote {len(stale)} block(s)" + (f": {', '.join(stale)}" if stale else ""))


if __name__ == "__main__":
    main()
