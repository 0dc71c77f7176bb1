"""Configuration, read once from the environment in `main` and passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from julia_chips.gateways.salvy import svix
from julia_chips.jetstream.reply_subjects import (
    DEFAULT_REPLY_PREFIXES,
    ReplyPrefixInvalid,
    reply_prefixes,
)
from julia_chips.nats_auth.roles import ROLES

# A warm day in 30 real seconds: the lifecycle, from provisioning to bans, within 8 minutes.
DEMO_SPEED = 86_400 / 30


class ConfigError(ValueError):
    """A bad environment value; the message names the variable."""


class Config(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str | None = None  # None: start the embedded nats-server
    database_url: str | None = None  # None: start the embedded PostgreSQL
    data_dir: Path = Path(".julia")
    http_port: int = 8000
    partitions: int = 16
    replicas: int = 1
    warmer_min_days: int = 7
    warmer_max_days: int = 14
    max_chips_active: int = 10
    api_token: str | None = None  # reads the HTTP API
    operator_token: str | None = None  # reads and operates (http/auth.py)
    webhook_secret: str | None = None
    salvy_webhook_secret: str | None = None
    salvy_api_token: str | None = None
    salvy_api_url: str | None = None
    evolution_api_url: str | None = None
    evolution_api_key: str | None = None
    vps_ssh_key: str | None = None
    vps_hosts_file: Path | None = None  # JSON list of VPS hosts (address, capacity, labels)
    vps_known_hosts: Path | None = None  # known_hosts for the hosts without a pinned host_key
    cloud_api_url: str | None = None
    cloud_api_token: str | None = None
    cloud_api_waba_id: str | None = None
    cloud_api_pin: str | None = None  # two-step verification PIN set when registering
    # HMAC key of the phones ROUTE_EVENTS remembers (opt-outs): keep it for ever, since
    # another key forgets every opted-out phone; required with an outside service configured
    phone_key: str = "julia-chips-sandbox-phone-key"
    public_url: str | None = None  # how Evolution reaches our /webhooks (instance config)
    http_host: str = "127.0.0.1"  # 0.0.0.0 behind a proxy in production
    lease_ttl: float = 10.0  # seconds a lease (partition or part) outlives its last renewal
    ack_wait: float = 30.0  # seconds before an unacked command is redelivered
    max_deliver: int = 5  # deliveries before a command goes to the dead letters
    snapshot_every: int = 50  # events between chip snapshots
    idle_passivate: float = 300.0  # seconds an idle chip actor stays in memory
    # Subjects answers may go to (reply_subjects.py): `_INBOX.` and JULIA_REPLY_PREFIXES.
    reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES
    # Policy: how hard the fleet may push (docs/configuration.md, "Policy").
    quarantine_days: float = 30.0  # a doctor is not prospected after their chip was banned
    weekly_prospecting_cap: int = 2  # prospecting messages per doctor per rolling 7 days
    brake_threshold: int = 3  # bans within the window that brake prospecting fleet-wide
    brake_window_minutes: float = 60.0
    brake_cool_off_hours: float = 6.0  # the brake releases itself after this
    ledger_max_age_days: float = 90.0  # MSG_EVENTS keeps sends this long
    part_grace: float = 60.0  # seconds a part may stay down before /health answers 503
    max_restarts: int = 10  # failed restarts in a row before a process gives up (exits 1)
    # NATS identity (docs/security.md): the embedded server with a user per role, this
    # process's role (its inbox), and credentials or TLS files for a server of our own.
    nats_auth: bool = False
    nats_role: str | None = None
    nats_creds: Path | None = None
    nats_nkey_seed: Path | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    # The demo fleet of `run` on the sandbox (demo/): JULIA_DEMO, on by default there.
    demo: bool = False
    demo_speed: float = DEMO_SPEED  # simulated seconds per real second
    demo_chips: int = 30
    demo_doctors: int = 2000

    @property
    def uses_sandbox(self) -> bool:
        """No outside service configured: `run` serves the sandbox and talks to it."""
        return not (self.salvy_api_url or self.evolution_api_url or self.cloud_api_url)

    def __repr__(self) -> str:
        """Never print secrets: only say which ones are set."""
        hidden = {"api_token", "operator_token", "webhook_secret", "salvy_webhook_secret",
                  "salvy_api_token", "evolution_api_key", "vps_ssh_key", "cloud_api_token",
                  "cloud_api_pin", "phone_key"}
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            shown = ("<set>" if value else None) if name in hidden else value
            parts.append(f"{name}={shown!r}")
        return f"Config({', '.join(parts)})"


# variable -> (Config field, type, lowest, highest)
_NUMBER_VARS: dict[str, tuple[str, type[int] | type[float], float, float]] = {
    "JULIA_HTTP_PORT": ("http_port", int, 0, 65535),
    "JULIA_PARTITIONS": ("partitions", int, 1, 1024),
    "JULIA_REPLICAS": ("replicas", int, 1, 5),
    "WARMER_MIN_DAYS": ("warmer_min_days", int, 1, 365),
    "WARMER_MAX_DAYS": ("warmer_max_days", int, 1, 365),
    "MAX_CHIPS_ACTIVE": ("max_chips_active", int, 0, 100_000),
    "JULIA_MAX_DELIVER": ("max_deliver", int, 1, 100),
    "JULIA_SNAPSHOT_EVERY": ("snapshot_every", int, 1, 100_000),
    "JULIA_LEASE_TTL": ("lease_ttl", float, 1.0, 3600.0),
    "JULIA_ACK_WAIT": ("ack_wait", float, 1.0, 3600.0),
    "JULIA_IDLE_PASSIVATE": ("idle_passivate", float, 1.0, 86_400.0),
    "JULIA_PART_GRACE": ("part_grace", float, 0.0, 86_400.0),
    "JULIA_QUARANTINE_DAYS": ("quarantine_days", float, 0.0, 365.0),
    "JULIA_WEEKLY_PROSPECTING_CAP": ("weekly_prospecting_cap", int, 0, 100),
    "JULIA_BRAKE_THRESHOLD": ("brake_threshold", int, 1, 10_000),
    "JULIA_BRAKE_WINDOW_MINUTES": ("brake_window_minutes", float, 1.0, 7 * 24 * 60.0),
    "JULIA_BRAKE_COOL_OFF_HOURS": ("brake_cool_off_hours", float, 0.0, 30 * 24.0),
    # At least the 8 local days the balancer's rebuild replays (ATTEMPT_MEMORY_DAYS).
    "JULIA_LEDGER_MAX_AGE_DAYS": ("ledger_max_age_days", float, 8.0, 3650.0),
    "JULIA_MAX_RESTARTS": ("max_restarts", int, 0, 10_000),
    # Up to a warm day in under a tenth of a second (tests); 1 is real time.
    "JULIA_DEMO_SPEED": ("demo_speed", float, 1.0, 1_000_000.0),
    "JULIA_DEMO_CHIPS": ("demo_chips", int, 1, 1000),
    "JULIA_DEMO_DOCTORS": ("demo_doctors", int, 1, 100_000),
}
_STR_VARS = {
    "NATS_URL": "nats_url",
    "DATABASE_URL": "database_url",
    "JULIA_API_TOKEN": "api_token",
    "JULIA_OPERATOR_TOKEN": "operator_token",
    "JULIA_WEBHOOK_SECRET": "webhook_secret",
    "SALVY_WEBHOOK_SECRET": "salvy_webhook_secret",
    "SALVY_API_TOKEN": "salvy_api_token",
    "SALVY_API_URL": "salvy_api_url",
    "EVOLUTION_API_URL": "evolution_api_url",
    "EVOLUTION_API_KEY": "evolution_api_key",
    "VPS_SSH_KEY": "vps_ssh_key",
    "CLOUD_API_URL": "cloud_api_url",
    "CLOUD_API_TOKEN": "cloud_api_token",
    "CLOUD_API_WABA_ID": "cloud_api_waba_id",
    "CLOUD_API_PIN": "cloud_api_pin",
    "JULIA_PUBLIC_URL": "public_url",
    "JULIA_HTTP_HOST": "http_host",
    "JULIA_PHONE_KEY": "phone_key",
    "JULIA_NATS_ROLE": "nats_role",
}

_PATH_VARS = {"JULIA_DATA_DIR": "data_dir", "VPS_HOSTS_FILE": "vps_hosts_file",
              "VPS_KNOWN_HOSTS": "vps_known_hosts",
              "NATS_CREDS": "nats_creds", "NATS_NKEY_SEED": "nats_nkey_seed",
              "NATS_TLS_CA": "nats_tls_ca", "NATS_TLS_CERT": "nats_tls_cert",
              "NATS_TLS_KEY": "nats_tls_key"}


def _number(var: str, raw: str, kind: type[int] | type[float], low: float, high: float) -> float:
    try:
        value = kind(raw)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{var} must be {noun}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{var} must be between {low:g} and {high:g}, got {raw}")
    return value


def _check_urls(env: Mapping[str, str]) -> None:
    url = env.get("NATS_URL")
    servers = [server.strip() for server in (url or "").split(",")]
    if url and not all(s.startswith(("nats://", "tls://", "ws://", "wss://")) for s in servers):
        shown = ", ".join(s.split("@")[-1] for s in servers)
        raise ConfigError("NATS_URL must be a nats:// URL or a comma-separated list of them, "
                          f"got {shown!r}")
    url = env.get("DATABASE_URL")
    if url and not url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")


def _reply_prefixes(raw: str) -> tuple[str, ...]:
    """JULIA_REPLY_PREFIXES: comma-separated inbox prefixes of clients that set their own."""
    try:
        return reply_prefixes(p for p in raw.split(",") if p.strip())
    except ReplyPrefixInvalid as err:
        raise ConfigError(f"JULIA_REPLY_PREFIXES: {err}") from None


def _check_secrets(config: Config) -> None:
    """Here, not per request: a mistyped secret would otherwise 500 every webhook."""
    if config.salvy_webhook_secret is not None:
        try:
            svix.check_secret(config.salvy_webhook_secret)
        except ValueError:
            raise ConfigError("SALVY_WEBHOOK_SECRET must be `whsec_` and base64 (Salvy's "
                              "dashboard shows it)") from None


def _nats_identity(env: Mapping[str, str]) -> dict[str, object]:
    """JULIA_NATS_AUTH (on/off) and JULIA_NATS_ROLE, checked; the files are paths."""
    values: dict[str, object] = {}
    auth = env.get("JULIA_NATS_AUTH", "off").strip().lower()
    if auth not in ("on", "off"):
        raise ConfigError(f"JULIA_NATS_AUTH must be on or off, got {auth[:20]!r}")
    values["nats_auth"] = auth == "on"
    role = env.get("JULIA_NATS_ROLE")
    if role and role not in ROLES:
        raise ConfigError(f"JULIA_NATS_ROLE must be one of {', '.join(ROLES)}, got {role[:40]!r}")
    if bool(env.get("NATS_TLS_CERT")) != bool(env.get("NATS_TLS_KEY")):
        raise ConfigError("NATS_TLS_CERT and NATS_TLS_KEY go together: set both or neither")
    return values


def _demo(env: Mapping[str, str], uses_sandbox: bool) -> bool:
    """JULIA_DEMO: on by default on the sandbox; never with an outside service, whose chips
    and doctors are real people's numbers."""
    raw = env.get("JULIA_DEMO", "").strip().lower()
    if raw not in ("", "on", "off"):
        raise ConfigError(f"JULIA_DEMO must be on or off, got {raw[:20]!r}")
    if raw == "on" and not uses_sandbox:
        raise ConfigError("JULIA_DEMO=on needs the sandbox: with SALVY_API_URL, "
                          "EVOLUTION_API_URL or CLOUD_API_URL set there is no demo")
    return uses_sandbox and raw != "off"


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build the Config from `env` (default: the process environment).

    :raises ConfigError: naming the variable whose value is bad.
    """
    env = os.environ if env is None else env
    _check_urls(env)
    values: dict[str, object] = {
        field: env[var] for var, field in _STR_VARS.items() if env.get(var)}
    for var, (field, kind, low, high) in _NUMBER_VARS.items():
        if env.get(var):
            values[field] = _number(var, env[var], kind, low, high)
    for var, field in _PATH_VARS.items():
        if env.get(var):
            values[field] = Path(env[var])
    values.update(_nats_identity(env))
    if env.get("JULIA_REPLY_PREFIXES"):
        values["reply_prefixes"] = _reply_prefixes(env["JULIA_REPLY_PREFIXES"])
    config = msgspec.convert(values, Config)
    config = msgspec.structs.replace(config, demo=_demo(env, config.uses_sandbox))
    if not config.uses_sandbox and not env.get("JULIA_PHONE_KEY"):
        raise ConfigError("JULIA_PHONE_KEY is required with an outside service: the sandbox's "
                          "key is public, and the phones it hashes are personal data")
    _check_secrets(config)
    if config.warmer_max_days < config.warmer_min_days:
        raise ConfigError("WARMER_MAX_DAYS must be at least WARMER_MIN_DAYS")
    return config
