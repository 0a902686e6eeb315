"""Throughput of two revisions of the code, measured in one run: did a change make the trainer slower?

Runs `throughput.py` (trainer vs the hand-written loop, per case) and `throughput.py --variants` (per
variant) in a checkout of each revision, alternating revisions round after round, and compares their
trainer / bare ratios. The bare loop is the same hand-written code in both checkouts, so the ratio
factors out how busy the machine is at each moment; the after / before column is the change's cost
(1.00 = no change, below 1 = slower).

    PYTHONPATH=. python benchmarks/compare_revisions.py --base 476c9e7 [--after 08282f0] [--rounds 2]
        [--quick] [--threads 1] [--variants sparse,deep] [--json out.json]

`--base` and `--after` are git revisions, each checked out into a temporary worktree (removed
afterwards); without `--after` the other side is the working tree this script lives in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(tree: Path, extra: list[str], out: Path) -> dict:
    """One throughput.py run in `tree`; its JSON results."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "benchmarks/throughput.py", *extra, "--json", str(out)]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def ratios(result: dict) -> dict[str, float]:
    """name -> trainer / bare from a throughput.py or --variants JSON."""
    rows = result["results"]
    if rows and "variant" in rows[0]:  # wall-clock and process-CPU ratios (the latter minds the load less)
        out = {f"variant {r['variant']}": r["ratio"] for r in rows}
        out.update({f"variant {r['variant']} (cpu)": r["cpu_ratio"] for r in rows if "cpu_ratio" in r})
        return out
    return {f"case {r['case']['name']}": r["variants"]["trainer"]["vs_bare"] for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. a commit)")
    parser.add_argument("--after", default=None, help="git revision of the new side (default: working tree)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each revision")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the benchmarks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--variants", default="all", help="comma-separated variants of the per-variant suite (default: all)"
    )
    args = parser.parse_args(argv)
    common = ["--threads", str(args.threads), *(["--quick"] if args.quick else [])]
    suites = {"cases": common, "variants": ["--variants", args.variants, *common]}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": Path(tmp) / "base", "after": Path(tmp) / "after" if args.after else ROOT}
        for side, rev in (("before", args.base), ("after", args.after)):
            if rev is not None:
                subprocess.run(
                    ["git", "worktree", "add", "--detach", str(trees[side]), rev], cwd=ROOT, check=True
                )
        try:
            seen: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for suite, extra in suites.items():
                    for side in order:
                        out = Path(tmp) / f"{side}-{suite}-{r}.json"
                        for name, value in ratios(run_once(trees[side], extra, out)).items():
                            seen[side].setdefault(name, []).append(value)
                        print(f"round {r + 1}: {suite} {side} done", flush=True)
        finally:
            for side in ("before", "after"):
                if trees[side] != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(trees[side])], cwd=ROOT)
    rows = []
    print(f"\n{'benchmark':28} {'before':>8} {'after':>8} {'after/before':>13}")
    for name in seen["before"]:
        before = statistics.median(seen["before"][name])
        after = statistics.median(seen["after"].get(name, [float("nan")]))
        rows.append({"name": name, "before": before, "after": after, "change": after / before})
        print(f"{name:28} {before:8.3f} {after:8.3f} {after / before:13.3f}")
    print("(trainer / bare per revision, medians over rounds; after/before 1.00 = unchanged)")
    if args.json:
        doc = {
            "base": args.base,
            "after": args.after or "working tree",
            "rounds": args.rounds,
            "argv": sys.argv[1:],
            "rows": rows,
            "raw": seen,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
