"""``import feedback`` stays light: no heavy or wrong-way imports at import time."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_feedback_loads_no_heavy_modules() -> None:
    code = (
        "import json, sys, feedback; "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    forbidden = {"ray", "torch", "smolagents", "search", "agent", "biosignals", "generated_models"}
    assert not loaded & forbidden
    # matplotlib and scipy.stats load only when a dashboard is drawn / drift is computed
    assert "matplotlib" not in loaded
    code2 = "import sys, feedback; print('scipy.stats' in sys.modules)"
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, check=True)
    assert out2.stdout.strip() == "False"
