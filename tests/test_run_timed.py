"""``benchmarks.common.run_timed``: an interrupted call still records the child's CPU time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The child burns about 1 s of CPU and exits by itself; the parent is interrupted after 0.2 s (SIGALRM ->
# KeyboardInterrupt, as Ctrl-C would), so the child is still running when the interrupt arrives.
WRAPPER = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    from benchmarks.common import run_timed

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    child = "import time\\nend = time.process_time() + 1.0\\nwhile time.process_time() < end: pass"
    try:
        run_timed([sys.executable, "-c", child], record_in=Path(sys.argv[1]))
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


def test_interrupted_call_counts_the_child_cpu_time(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(run_dir)], cwd=repo, timeout=120)
    assert done.returncode == 130  # the interrupt still propagates
    timing = json.loads((run_dir / "benchmark_timing.json").read_text())
    assert timing["calls"] == 1
    assert timing["cpu_seconds"] >= 0.8  # subprocess.run killed the child unreaped: 0.0


def test_failing_command_raises_and_is_timed(tmp_path: Path) -> None:
    from benchmarks.common import run_timed

    with pytest.raises(subprocess.CalledProcessError) as error:
        run_timed([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "log.txt", record_in=tmp_path)
    assert error.value.returncode == 3
    assert json.loads((tmp_path / "benchmark_timing.json").read_text())["calls"] == 1
