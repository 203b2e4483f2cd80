import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tutorials" / "minimal_lejepa.py"


def test_minimal_tutorial_is_short_and_runs():
    """The minimal LeJEPA tutorial stays within 100 lines, trains, and reports two probe AUCs in [0, 1]."""
    assert len(TUTORIAL.read_text().splitlines()) <= 100
    out = subprocess.run(
        [sys.executable, str(TUTORIAL), "--minutes", "0.05", "--batch", "16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"step\s+0\s+loss \d+\.\d+\s+pred \d+\.\d+\s+sigreg \d+\.\d+", out.stdout)
    match = re.search(r"linear-probe test AUC: LeJEPA (\d\.\d+) \| random init (\d\.\d+)", out.stdout)
    assert match, out.stdout[-2000:]
    assert all(0.0 <= float(v) <= 1.0 for v in match.groups())
