"""/sim/*: what the phone would do, so scenarios can log in and follow without one.

No admin token: a load test calls these once per virtual user, like the mini-program client.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from mock_platform.admin import BadRequest, json_error, json_object, json_response

if TYPE_CHECKING:
    from mock_platform.app import MockState


class Sim:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def _user_id(self, request: web.Request) -> str:
        body = await json_object(request)
        user_id = body.get("user_id")
        if not isinstance(user_id, str):
            raise BadRequest("user_id: a string is required (2088 followed by 12 digits)")
        return user_id

    async def auth_code(self, request: web.Request) -> web.StreamResponse:
        """{"user_id"} -> {"auth_code"}: single-use, for alipay.system.oauth.token or jscode2session."""
        try:
            code = self.state.ledger.mint_auth_code(await self._user_id(request), time.time())
        except (BadRequest, ValueError) as exc:
            return json_error(400, str(exc))
        return json_response({"auth_code": code})

    async def follow(self, request: web.Request) -> web.StreamResponse:
        """{"user_id"} -> {"ok": true}: the user follows the life account."""
        try:
            self.state.ledger.follow(await self._user_id(request))
        except (BadRequest, ValueError) as exc:
            return json_error(400, str(exc))
        return json_response({"ok": True})


def add_routes(app: web.Application, state: MockState) -> None:
    sim = Sim(state)
    app.router.add_post("/sim/auth_code", sim.auth_code)
    app.router.add_post("/sim/follow", sim.follow)
