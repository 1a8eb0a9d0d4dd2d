from loadkit.measure.generator import GeneratorHealth


def test_cpu_figures_are_taken_inside_the_window_only():
    health = GeneratorHealth()
    health.add_samples("w1", [(t, 95.0 if t >= 10 else 20.0) for t in range(20)])
    health.add_samples("w2", [(t, 30.0) for t in range(20)])
    inside = health.summary(0, 9, workers=2)
    assert inside["cpu_max"] == 30.0 and inside["cpu_high_s"] == 0
    whole = health.summary(0, 19, workers=2)
    assert whole["cpu_max"] == 95.0 and whole["cpu_high_s"] == 10


def test_a_worker_that_disappears_while_running_is_lost():
    health = GeneratorHealth()
    health.observe_workers(alive=["a", "b"], missing=[])
    health.observe_workers(alive=["a"], missing=[])
    assert health.summary(0, 1, workers=1)["workers_lost"] == 1
    assert health.summary(0, 1, workers=1)["workers"] == 2
