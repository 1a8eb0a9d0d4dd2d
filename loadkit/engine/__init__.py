"""The Locust side of loadkit: the plugin and its roles, pacing, the load shape, connections."""
