"""What a judging process pays, in its own event loop, for what it computes while a run goes on:
the live figures (progress line, web UI tab) and the live snapshot a dead generator leaves.

Filled with the full mixed-event plan's length (690 s) at 50 requests/s on 12 endpoints, side by
side in one run; each figure is the mean of 5 calls after one warm-up call.

    .venv/bin/python bench/live_snapshot.py
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from loadkit.engine.session import RunSession
from loadkit.plan import load_plan

PLAN = Path(__file__).resolve().parents[1] / "scenarios" / "plans" / "event_mixed.yaml"
RATE = 50
ENDPOINTS = [f"endpoint.{i}" for i in range(12)]
REPEAT = 7


def main() -> None:
    plan = load_plan(PLAN)
    rng = random.Random(7)
    session = RunSession(plan, report_dir=Path(tempfile.mkdtemp()))
    session.new_pacer()
    t0 = time.time() - plan.duration_s
    session.begin(t0)
    for second in range(int(plan.duration_s)):
        for k in range(RATE):
            latency = rng.lognormvariate(1, 1)
            session.recorder.record(
                rng.choice(ENDPOINTS), t=t0 + second + k / RATE, response_ms=latency, ok=True
            )
    assert session.pacer is not None
    calls = {
        "live figures (Recorder.live)": lambda: session.recorder.live(time.time()),
        "judged figures (Recorder.figures)": lambda: session.recorder.figures(until=time.time()),
        "live snapshot (RunSession.write_snapshot)": lambda: session.write_snapshot(
            session.pacer.counts(), session.generator(1), now=time.time()
        ),
    }
    requests = RATE * int(plan.duration_s)
    print(f"{plan.name}: {plan.duration_s:g} s, {requests} requests, {len(ENDPOINTS)} endpoints")
    for label, call in calls.items():
        call()
        times = []
        for _ in range(REPEAT):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        print(f"{label:<45} {min(times) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
