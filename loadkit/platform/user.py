"""`PlatformUser`: a Locust user that talks to the platform (or a service in front of it).

Subclass it in a scenario: `self.platform` builds and classifies gateway calls, `self.population`
hands out visitors (new / returning / dormant, ids unique per worker), `self.login(visitor)` logs a
visitor in, reusing the session a returning user already has. Importing this module registers
loadkit's Locust plugin, so `locust -f scenario.py --plan plan.yaml` paces and judges the run.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from locust import FastHttpUser

import loadkit.engine.plugin  # noqa: F401  (registers loadkit's options and listeners)
from loadkit.engine.connections import keep_alive_above_fd_setsize
from loadkit.platform.client import PlatformClient
from loadkit.platform.login import Session, SessionCache, login
from loadkit.platform.population import Population, Visitor

DEFAULT_APP_ID = "2021000000000001"


class PlatformUser(FastHttpUser):
    abstract = True
    app_id: ClassVar[str] = os.environ.get("LOADKIT_APP_ID", DEFAULT_APP_ID)
    # new / returning / dormant shares of this scenario's visitors
    population_shares: ClassVar[tuple[float, float, float]] = (0.6, 0.3, 0.1)
    # A platform call that takes 10 s has failed the event already; don't wait Locust's 60 s.
    network_timeout = 10.0
    connection_timeout = 5.0
    max_retries = 0

    sessions: ClassVar[SessionCache] = SessionCache()
    _populations: ClassVar[dict[type, Population]] = {}

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        keep_alive_above_fd_setsize(self)  # one connection per user, however many users
        self.platform = PlatformClient(self.client, app_id=self.app_id)
        self.population = self.population_for(environment)

    @classmethod
    def population_for(cls, environment: Any) -> Population:
        """One population per user class per process (returning users are this class's own)."""
        population = PlatformUser._populations.get(cls)
        if population is None:
            new, returning, dormant = cls.population_shares
            population = Population(new, returning, dormant).bind(environment)
            PlatformUser._populations[cls] = population
        return population

    def login(self, visitor: Visitor | str, *, info: bool = False) -> Session | None:
        """Log the visitor in; a returning visitor with a live session skips the round trips."""
        user_id = visitor if isinstance(visitor, str) else visitor.user_id
        session = self.sessions.get(user_id)
        if session is None:
            session = login(self.platform, user_id, info=info)
            if session is not None:
                self.sessions.put(session)
        return session
