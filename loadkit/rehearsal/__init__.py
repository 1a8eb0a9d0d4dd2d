"""The three-tier rehearsal: the mock platform, the service under test, drills, reconciliation."""
