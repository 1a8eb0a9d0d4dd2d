"""A tiny rehearsal journey for the e2e tests: a new visitor gets an auth code from the mock's
client simulator (the phone's part), logs in at the campaign service, claims Jifenbao points."""

from __future__ import annotations

import itertools
import os

from locust import task

from loadkit import JsonUser

MOCK_URL = os.environ.get("LOADKIT_MOCK_URL", "")
# unique across worker processes: the pid's last 4 digits, then a counter
_ids = itertools.count(os.getpid() % 10_000 * 100_000_000 + 1)


class Visitor(JsonUser):
    @task
    def claim_points(self) -> None:
        user_id = f"2088{next(_ids):012d}"
        code = self.api(
            "POST", f"{MOCK_URL}/sim/auth_code", {"user_id": user_id}, name="sim.auth_code", told=None
        )
        if code is None:
            return
        login = self.api(
            "POST",
            "/api/login",
            {"auth_code": code["auth_code"]},
            name="login",
            require=("session",),
            told=None,
        )
        if login is None:
            return
        self.user_id = login["user_id"]
        self.api(
            "POST",
            "/api/jifenbao/claim",
            name="points.claim",
            expect={"already_claimed": "already_claimed", "sold_out": "sold_out"},
            require=("grant_id",),
            headers={"Authorization": f"Bearer {login['session']}"},
        )
