"""Official-event scenarios: Locust files and their event plans (scenarios/plans/*.yaml)."""
