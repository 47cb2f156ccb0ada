"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web
from calendence.settings import GatewaySettings
from calendence.storage import RedisClient
from nats.aio.client import Client as NatsClient

from gateway.auth import Authenticator
from gateway.downstream import Downstream
from gateway.hold_placer import HoldPlacer

SETTINGS = web.AppKey("settings", GatewaySettings)
DOWNSTREAM = web.AppKey("downstream", Downstream)
NATS = web.AppKey("nats", NatsClient)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
HOLD_PLACER = web.AppKey("hold_placer", HoldPlacer)
