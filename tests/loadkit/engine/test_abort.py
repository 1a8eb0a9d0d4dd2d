from loadkit.engine.abort import AbortWatch
from loadkit.plan import AbortRule


def feed_series(watch, rates, rps=100):
    requests = failures = 0
    reason = None
    for second, rate in enumerate(rates):
        requests += rps
        failures += int(rps * rate)
        reason = watch.feed(float(second), requests, failures)
    return reason


def test_trips_only_after_staying_above_for_the_duration():
    watch = AbortWatch(AbortRule(error_rate=0.2, for_s=5.0))
    assert feed_series(watch, [0.0] * 5 + [0.5] * 4) is None
    watch = AbortWatch(AbortRule(error_rate=0.2, for_s=5.0))
    reason = feed_series(watch, [0.0] * 5 + [0.5] * 12)
    assert reason is not None and "20.0%" in reason and "abort_on" in reason


def test_a_dip_below_the_limit_restarts_the_clock():
    watch = AbortWatch(AbortRule(error_rate=0.2, for_s=4.0))
    # bursts of errors separated by clean stretches long enough to clear the trailing window
    assert feed_series(watch, ([0.9] * 3 + [0.0] * 8) * 3) is None


def test_no_traffic_never_trips():
    watch = AbortWatch(AbortRule(error_rate=0.0, for_s=1.0))
    assert all(watch.feed(float(t), 0, 0) is None for t in range(10))
