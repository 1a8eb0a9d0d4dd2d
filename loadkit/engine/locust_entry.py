"""Passed to Locust as an extra `-f` file by `loadkit run`, so plain locustfiles get the plugin."""

import loadkit.engine.plugin  # noqa: F401  (registers loadkit's options and listeners)
