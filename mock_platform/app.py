"""create_app(config): one mock platform (ledger, faults, keys, metrics) as an aiohttp app."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from mock_platform import admin, signing, sim, wechat
from mock_platform.config import MAX_BODY_BYTES_CAP, MockConfig
from mock_platform.faults import Faults
from mock_platform.gateway import Gateway
from mock_platform.ledger import Ledger
from mock_platform.metrics import Metrics
from mock_platform.pipeline import Pipeline
from mock_platform.wxpay import Platform


@dataclass
class MockState:
    """Everything the routes share; one per app, touched only from the event loop."""

    config: MockConfig
    ledger: Ledger
    faults: Faults
    metrics: Metrics
    private_key: RSAPrivateKey
    public_pem: str
    admin_token: str
    started_at: float
    wechat: Platform  # the WeChat Pay platform's keys and certificate (made on first use)

    def reset(self) -> None:
        """Back to the state at start: ledger cleared (apps kept) and the config's seed applied."""
        self.ledger.reset()
        if self.config.seed:
            self.ledger.seed(self.config.seed)
        self.metrics.reset()


STATE = web.AppKey("mock_state", MockState)
GATEWAY = web.AppKey("mock_gateway", Gateway)  # the gateway front answers through the same object


async def _metrics(request: web.Request) -> web.StreamResponse:
    body = request.app[STATE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def create_app(config: MockConfig | None = None) -> web.Application:
    """The app for `config` (validated by MockConfig.from_mapping); its state is `app[STATE]`.

    The response-signing key pair (RSA 2048) is generated here, fresh for every app.
    """
    config = config or MockConfig()
    ledger = Ledger(config.ledger)
    if config.seed:
        ledger.seed(config.seed)
    key = signing.generate_private_key()
    state = MockState(
        config=config,
        ledger=ledger,
        faults=Faults.from_config(config.faults, config.profile),
        metrics=Metrics(),
        private_key=key,
        public_pem=signing.public_pem(key),
        admin_token=config.admin_token or secrets.token_urlsafe(24),
        started_at=time.time(),
        wechat=Platform(**config.wechat_platform),
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES_CAP)
    app[STATE] = state
    pipeline = Pipeline(state.faults, state.ledger, state.metrics)  # every platform call goes through it
    gateway = app[GATEWAY] = Gateway(state, pipeline)
    app.router.add_route("*", "/gateway.do", gateway.handle)
    wechat.add_routes(app, state, pipeline)
    sim.add_routes(app, state)
    admin.add_routes(app, state)
    app.router.add_get("/metrics", _metrics)
    app.on_cleanup.append(_close_journal)
    return app


async def _close_journal(app: web.Application) -> None:
    """The effects journal's file goes with the app (a finalizer would at exit otherwise)."""
    app[STATE].ledger.effects.close()
