"""The stall fence (streams/fence.py, bug B6): a process frozen past the session timeout exits
before its next record; a merely blocked event loop does not."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

CHILD = """
import sys, time
from streams.fence import Fence
fence = Fence(0.6, interval_s=0.05).start()
print("ready", flush=True)
while True:
    fence.check()          # what every stream agent does before a record
    if sys.argv[1] == "blocked":
        time.sleep(1.5)     # the loop blocked longer than the limit; the fence thread still runs
        print("survived", flush=True)
        break
    time.sleep(0.02)
"""


def _child(mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_process_frozen_past_the_session_exits_with_75() -> None:
    proc = _child("frozen")
    time.sleep(0.3)
    proc.send_signal(signal.SIGSTOP)
    time.sleep(1.5)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=10) == 75


def test_a_blocked_loop_is_not_a_frozen_process() -> None:
    proc = _child("blocked")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "survived" in out


def test_a_short_stop_is_tolerated() -> None:
    proc = _child("frozen")
    proc.send_signal(signal.SIGSTOP)
    time.sleep(0.2)
    proc.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    assert proc.poll() is None
    proc.kill()
    proc.wait()
