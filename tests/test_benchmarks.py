"""Every script in benchmarks/ runs, at a tiny size, with its real code path: a change cannot break one unnoticed.

The figures in the docs come from the scripts at their default sizes; here only
that each one runs to the end and reports what it should (exit 0; a benchmark
whose methods disagree exits 1).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {  # script -> arguments that make it small; every script in benchmarks/ must be listed
    "bench_generate.py": [["--batch", "2", "--hidden", "64", "--layers", "1", "--vocab", "400", "--codebook", "64",
                           "--grid", "3", "--reason-tokens", "4", "--repeats", "1"],
                          ["--batch", "1", "--hidden", "64", "--layers", "1", "--vocab", "400", "--codebook", "64",
                           "--grid", "3", "--reason-tokens", "4", "--repeats", "1", "--quantize", "int8"],
                          ["--decoding", "--batches", "1", "2", "--hidden", "64", "--layers", "1", "--vocab", "400",
                           "--codebook", "64", "--grid", "3", "--reason-tokens", "4", "--repeats", "1"],
                          ["--decoding", "--builtin", "--batches", "1", "--repeats", "1"]],
    "bench_previews.py": [["--pairs", "1", "--hidden", "64", "--images", "1", "--layers", "1", "--grid", "3",
                           "--reason-tokens", "4"]],
    "fuzz_parser.py": [["--count", "300"]],
}
RUNS = [(script, args) for script, variants in TINY.items() for args in variants]


def test_every_benchmark_script_is_exercised():
    assert sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")) == sorted(TINY)


@pytest.mark.parametrize("script, args", RUNS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(RUNS)])
def test_benchmark_runs_at_a_tiny_size(script, args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip()
