"""Cold-start timings of kordiff's entry points: a fresh Python process per run, medians of several runs.

    python bench/startup.py [--runs 5] [--check]

Each command runs in a new interpreter (so imports are cold; the OS file cache is warm after the first run, as
it is for a user's second command). `--check` exits 1 when a median misses its target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# (label, argv, target seconds or None): targets from issue 8 (plan <= 1.5 s, app --help <= 3 s).
COMMANDS = [
    ('python -m kordiff plan "별빛의 속삭임"', [PY, "-m", "kordiff", "plan", "별빛의 속삭임"], 1.5),
    ("python -m kordiff --help", [PY, "-m", "kordiff", "--help"], 1.5),
    ("python app.py --help", [PY, "app.py", "--help"], 3.0),
    ('python -c "import kordiff"', [PY, "-c", "import kordiff"], None),
]


def time_command(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of `runs` fresh processes (after one untimed warm-up that fills the OS file cache)."""
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[1:])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        if i:
            times.append(elapsed)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default: 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a median misses its target")
    args = parser.parse_args(argv)
    print("| command | median s | min s | max s | target s |")
    print("|---|---|---|---|---|")
    missed = []
    for label, cmd, target in COMMANDS:
        times = time_command(cmd, max(1, args.runs))
        median = statistics.median(times)
        mark = "" if target is None else (f"<= {target}" + ("" if median <= target else " MISSED"))
        if target is not None and median > target:
            missed.append(label)
        print(f"| `{label}` | {median:.2f} | {min(times):.2f} | {max(times):.2f} | {mark} |")
    print(f"\n({max(1, args.runs)} runs each after one warm-up, {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')})")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
