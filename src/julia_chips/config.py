"""Configuration, read once from the environment in `main` and passed explicitly."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from julia_chips.contract.activation import RegistrarKind
from julia_chips.contract.replay import GATEWAY_DEDUPE
from julia_chips.contract.subjects import Stream
from julia_chips.gateways.salvy import svix
from julia_chips.jetstream.reply_subjects import (
    DEFAULT_REPLY_PREFIXES,
    ReplyPrefixInvalid,
    reply_prefixes,
)
from julia_chips.jetstream.streams import DAY, STREAM_LIMITS, StreamLimits
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
    registrar: RegistrarKind = "vps"  # how new chips get their WhatsApp account (JULIA_REGISTRAR)
    cloud_api_app_secret: str | None = None  # Meta app secret: signs Cloud API webhooks
    cloud_api_verify_token: str | None = None  # ours: Meta's webhook handshake presents it
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
    relink_max_tries: int = 3  # pairing codes offered to a logged-out chip before it cools
    relink_wait: float = 180.0  # seconds each pairing code (or QR) is waited for
    # Every stream's bounds: STREAM_LIMITS with the JULIA_STREAM_MAX_*_<STREAM> overrides.
    stream_limits: dict[Stream, StreamLimits] = msgspec.field(
        default_factory=lambda: dict(STREAM_LIMITS))
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
    # JULIA_SANDBOX_ALLOW_REMOTE=1: the sandbox may fill a NATS or PostgreSQL elsewhere.
    sandbox_allow_remote: bool = False
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
                  "cloud_api_pin", "cloud_api_app_secret", "cloud_api_verify_token",
                  "phone_key"}
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            shown = ("<set>" if value else None) if name in hidden else value
            parts.append(f"{name}={shown!r}")
        return f"Config({', '.join(parts)})"


# What the activator reads from the environment, by registrar. Both allocate a VPS host for the
# gateway instance (chosen by `julia-gateway-status` over SSH, its slot freed on retirement),
# so both need the host list and the SSH key; only `cloud_api` needs the Graph account.
_SHARED_VARS = ("SALVY_API_URL", "SALVY_API_TOKEN", "EVOLUTION_API_URL", "EVOLUTION_API_KEY",
                "VPS_SSH_KEY", "VPS_HOSTS_FILE", "JULIA_WEBHOOK_SECRET", "JULIA_PUBLIC_URL")
CLOUD_API_VARS = ("CLOUD_API_URL", "CLOUD_API_TOKEN", "CLOUD_API_WABA_ID", "CLOUD_API_PIN")
REGISTRAR_VARS: dict[RegistrarKind, tuple[str, ...]] = {
    "vps": _SHARED_VARS, "cloud_api": _SHARED_VARS + CLOUD_API_VARS}
REGISTRARS: tuple[RegistrarKind, ...] = ("vps", "cloud_api")

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
    "JULIA_RELINK_MAX_TRIES": ("relink_max_tries", int, 1, 20),
    "JULIA_RELINK_WAIT": ("relink_wait", float, 10.0, 3600.0),
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
    "CLOUD_API_APP_SECRET": "cloud_api_app_secret",
    "CLOUD_API_VERIFY_TOKEN": "cloud_api_verify_token",
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


_STREAM_VAR = re.compile(r"JULIA_STREAM_(MAX_BYTES|MAX_MSG_SIZE|MAX_AGE_DAYS)_(\w+)")
_SIZE = re.compile(r"(\d+)\s*(KiB|MiB|GiB|TiB)?", re.IGNORECASE)
_UNITS = {None: 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_LARGEST_MESSAGE = 64 * 1024**2  # nats-server's own ceiling on max_payload


def _size(var: str, raw: str, low: int, high: int) -> int:
    """Bytes: a whole number, optionally with a binary unit (`512MiB`, `4GiB`)."""
    match = _SIZE.fullmatch(raw.strip())
    if match is None:
        raise ConfigError(f"{var} must be a size in bytes, optionally with KiB, MiB, GiB or "
                          f"TiB (e.g. 4GiB), got {raw[:40]!r}")
    value = int(match[1]) * _UNITS[match[2] and match[2].lower()]
    if not low <= value <= high:
        raise ConfigError(f"{var} must be between {low} and {high} bytes, got {raw}")
    return value


def _stream_limits(env: Mapping[str, str]) -> dict[Stream, StreamLimits]:
    """STREAM_LIMITS with `JULIA_STREAM_MAX_BYTES_<STREAM>`, `..._MAX_MSG_SIZE_<STREAM>` and
    `..._MAX_AGE_DAYS_<STREAM>` applied; any other `JULIA_STREAM_` variable is a typo."""
    limits = dict(STREAM_LIMITS)
    for var in sorted(v for v in env if v.startswith("JULIA_STREAM_") and env[v]):
        match = _STREAM_VAR.fullmatch(var)
        if match is None or match[2] not in Stream.__members__:
            raise ConfigError(f"{var} is not a stream setting: JULIA_STREAM_MAX_BYTES_<STREAM>, "
                              "JULIA_STREAM_MAX_MSG_SIZE_<STREAM> or "
                              f"JULIA_STREAM_MAX_AGE_DAYS_<STREAM>, <STREAM> one of "
                              f"{', '.join(Stream.__members__)}")
        setting, stream = match[1], Stream(match[2])
        bound = limits[stream]
        if setting == "MAX_BYTES":
            bound = msgspec.structs.replace(
                bound, max_bytes=_size(var, env[var], 1024**2, 1024**5))
        elif setting == "MAX_MSG_SIZE":
            bound = msgspec.structs.replace(
                bound, max_msg_size=_size(var, env[var], 1024, _LARGEST_MESSAGE))
        else:
            bound = msgspec.structs.replace(bound, max_age_days=_stream_age(var, env[var], stream))
        if bound.max_msg_size > bound.max_bytes:
            raise ConfigError(f"{var}: the largest message of {stream} ({bound.max_msg_size} "
                              f"bytes) must fit its max_bytes ({bound.max_bytes})")
        limits[stream] = bound
    largest = max(b.max_msg_size for s, b in limits.items() if s != Stream.DEAD_LETTER)
    if limits[Stream.DEAD_LETTER].max_msg_size < largest:
        raise ConfigError(f"JULIA_STREAM_MAX_MSG_SIZE_DEAD_LETTER must be at least the largest "
                          f"message of any other stream ({largest} bytes): a message that "
                          "cannot be handled is dead-lettered whole")
    return limits


def _stream_age(var: str, raw: str, stream: Stream) -> float:
    """Only a stream of transient data has an age: history is kept for ever, and MSG_EVENTS's
    age is JULIA_LEDGER_MAX_AGE_DAYS."""
    if STREAM_LIMITS[stream].max_age_days is None:
        why = ("set JULIA_LEDGER_MAX_AGE_DAYS" if stream == Stream.MSG_EVENTS
               else f"{stream} is history, kept for ever")
        raise ConfigError(f"{var}: {stream} takes no max age here ({why})")
    # GATEWAY_IN must remember a webhook for its whole dedupe window (contract/replay.py).
    low = GATEWAY_DEDUPE.total_seconds() / DAY if stream == Stream.GATEWAY_IN else 1 / 24
    return _number(var, raw, float, low, 3650.0)


def _check_secrets(config: Config) -> None:
    """Here, not per request: a mistyped secret would otherwise 500 every webhook."""
    if config.salvy_webhook_secret is not None:
        try:
            svix.check_secret(config.salvy_webhook_secret)
        except ValueError:
            raise ConfigError("SALVY_WEBHOOK_SECRET must be `whsec_` and base64 (Salvy's "
                              "dashboard shows it)") from None


def _registrar(env: Mapping[str, str]) -> RegistrarKind:
    raw = env.get("JULIA_REGISTRAR", "vps").strip().lower()
    for kind in REGISTRARS:
        if raw == kind:
            return kind
    raise ConfigError(f"JULIA_REGISTRAR must be vps or cloud_api, got {raw[:20]!r}")


def _value(config: Config, var: str) -> object:
    field = _STR_VARS.get(var) or _PATH_VARS[var]
    return getattr(config, field)


def check_activator_config(config: Config) -> bool:
    """Check that the activator has what its registrar needs (`REGISTRAR_VARS`); whether the
    Cloud API is configured, so that its registrar is built too (a partial set is a mistake).

    :raises ConfigError: naming the first variable missing.
    """
    for var in REGISTRAR_VARS[config.registrar]:
        if not _value(config, var):
            raise ConfigError(f"{var} is required to run the activator with "
                              f"JULIA_REGISTRAR={config.registrar}")
    cloud_set = [var for var in CLOUD_API_VARS if _value(config, var)]
    if cloud_set and len(cloud_set) < len(CLOUD_API_VARS):
        missing = next(var for var in CLOUD_API_VARS if var not in cloud_set)
        raise ConfigError(f"{missing} is required with {cloud_set[0]} set: the Cloud API "
                          "registrar needs all of " + ", ".join(CLOUD_API_VARS))
    return bool(cloud_set)


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


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address; a name is not (whatever it resolves to may be
    public)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def remote_hosts(url: str) -> list[str]:
    """The hosts of a NATS or PostgreSQL URL that are not this machine: loopback, localhost
    and a unix socket (no host, or a `/` path as in `?host=/run/postgresql`) are local.
    A comma-separated list of URLs, or of hosts (libpq's `host1:5432,host2`), counts each."""
    remote = []
    for one in url.split(","):
        one = one if "://" in one else f"x://{one}"
        parts = urlsplit(one)
        host = unquote(parts.netloc.rpartition("@")[2])
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 or "]:" in host else host
        socket_dirs = parse_qs(parts.query).get("host", [])
        if socket_dirs and all(d.startswith("/") for d in socket_dirs):
            continue
        if host and not host.startswith("/") and not is_loopback(host):
            remote.append(host)
    return remote


def require_local_servers(config: Config) -> None:
    """The sandbox's made-up chips, doctors and webhooks go only to servers on this machine,
    never into a production NATS or PostgreSQL, unless JULIA_SANDBOX_ALLOW_REMOTE=1.

    :raises ConfigError: naming the variable that points elsewhere.
    """
    if config.sandbox_allow_remote:
        return
    for var, url in (("NATS_URL", config.nats_url), ("DATABASE_URL", config.database_url)):
        if url and (hosts := remote_hosts(url)):
            raise ConfigError(f"{var} points at {', '.join(hosts)}, not this machine: the "
                              "sandbox only runs against local servers (loopback, localhost, "
                              "a unix socket); set JULIA_SANDBOX_ALLOW_REMOTE=1 to run it there "
                              "anyway")


def _flag(env: Mapping[str, str], var: str) -> bool:
    raw = env.get(var, "0").strip()
    if raw not in ("0", "1"):
        raise ConfigError(f"{var} must be 1 or 0, got {raw[:20]!r}")
    return raw == "1"
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
    values["registrar"] = _registrar(env)
    if env.get("JULIA_REPLY_PREFIXES"):
        values["reply_prefixes"] = _reply_prefixes(env["JULIA_REPLY_PREFIXES"])
    values["stream_limits"] = _stream_limits(env)
    values["sandbox_allow_remote"] = _flag(env, "JULIA_SANDBOX_ALLOW_REMOTE")
    config = msgspec.convert(values, Config)
    config = msgspec.structs.replace(config, demo=_demo(env, config.uses_sandbox))
    if not config.uses_sandbox and not env.get("JULIA_PHONE_KEY"):
        raise ConfigError("JULIA_PHONE_KEY is required with an outside service: the sandbox's "
                          "key is public, and the phones it hashes are personal data")
    _check_secrets(config)
    if config.warmer_max_days < config.warmer_min_days:
        raise ConfigError("WARMER_MAX_DAYS must be at least WARMER_MIN_DAYS")
    return config
