"""What the handlers share, as typed app keys (no globals)."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NATS

from julia_chips.clock import Clock
from julia_chips.config import Config
from julia_chips.supervisor import Supervisor

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
NATS_CONN = web.AppKey("nats", NATS)
POOL = web.AppKey("pool", asyncpg.Pool)
SUPERVISOR = web.AppKey("supervisor", Supervisor)  # only in a supervised process: /health parts
