"""Bad configuration stops start-up with a message naming the variable; secrets never print."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from julia_chips.activation.wiring import activator_settings
from julia_chips.config import (
    ConfigError,
    check_activator_config,
    load_config,
    remote_hosts,
    require_local_servers,
)
from julia_chips.contract.activation import Step
from julia_chips.contract.replay import GATEWAY_DEDUPE
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.streams import StreamLimits


def test_defaults_match_the_design() -> None:
    config = load_config({})
    assert (config.partitions, config.http_port, config.warmer_min_days,
            config.warmer_max_days, config.nats_url) == (16, 8000, 7, 14, None)


@pytest.mark.parametrize(("env", "named"), [
    ({"JULIA_PARTITIONS": "many"}, "JULIA_PARTITIONS"),
    ({"JULIA_HTTP_PORT": "70000"}, "JULIA_HTTP_PORT"),
    ({"WARMER_MIN_DAYS": "0"}, "WARMER_MIN_DAYS"),
    ({"WARMER_MIN_DAYS": "10", "WARMER_MAX_DAYS": "5"}, "WARMER_MAX_DAYS"),
    ({"JULIA_LEASE_TTL": "soon"}, "JULIA_LEASE_TTL"),
    ({"NATS_URL": "http://x"}, "NATS_URL"),
    ({"NATS_URL": "nats://a:4222,http://b:4222"}, "NATS_URL"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    # at start-up, not as a 500 on every Salvy webhook
    ({"SALVY_WEBHOOK_SECRET": "whsec_not*base64!"}, "SALVY_WEBHOOK_SECRET"),
    ({"JULIA_NATS_AUTH": "yes"}, "JULIA_NATS_AUTH"),
    ({"JULIA_NATS_ROLE": "root"}, "JULIA_NATS_ROLE"),
    ({"NATS_TLS_CERT": "/etc/julia/nats.crt"}, "NATS_TLS_KEY"),
    ({"JULIA_RELINK_MAX_TRIES": "0"}, "JULIA_RELINK_MAX_TRIES"),
    ({"JULIA_RELINK_MAX_TRIES": "three"}, "JULIA_RELINK_MAX_TRIES"),
    ({"JULIA_RELINK_WAIT": "1"}, "JULIA_RELINK_WAIT"),
    ({"JULIA_DEMO": "maybe"}, "JULIA_DEMO"),
    ({"JULIA_DEMO_SPEED": "0.5"}, "JULIA_DEMO_SPEED"),
    ({"JULIA_DEMO_SPEED": "fast"}, "JULIA_DEMO_SPEED"),
    ({"JULIA_DEMO_CHIPS": "0"}, "JULIA_DEMO_CHIPS"),
    ({"JULIA_DEMO_DOCTORS": "lots"}, "JULIA_DEMO_DOCTORS"),
    # a demo against real services would message real people
    ({"JULIA_DEMO": "on", "EVOLUTION_API_URL": "https://evo.example",
      "JULIA_PHONE_KEY": "k" * 32}, "JULIA_DEMO"),
])
def test_bad_value_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env)


def test_repr_hides_secrets() -> None:
    config = load_config({"JULIA_API_TOKEN": "tok-123", "EVOLUTION_API_KEY": "evo-456",
                          "CLOUD_API_APP_SECRET": "meta-789", "CLOUD_API_VERIFY_TOKEN": "v-0"})
    for secret in ("tok-123", "evo-456", "meta-789", "v-0"):
        assert secret not in repr(config)
    assert "api_token='<set>'" in repr(config)
    assert (config.cloud_api_app_secret, config.cloud_api_verify_token) == ("meta-789", "v-0")


def test_file_variables_are_read_as_paths() -> None:
    config = load_config({"VPS_HOSTS_FILE": "/etc/julia/hosts.json", "JULIA_DATA_DIR": "d"})
    assert config.vps_hosts_file == Path("/etc/julia/hosts.json")
    assert config.data_dir == Path("d")


def test_an_outside_service_needs_a_phone_key_of_its_own() -> None:
    outside = {"EVOLUTION_API_URL": "https://evo.example.com"}
    with pytest.raises(ConfigError, match="JULIA_PHONE_KEY"):
        load_config(outside)
    assert load_config(outside | {"JULIA_PHONE_KEY": "k" * 32}).phone_key == "k" * 32
    assert "k" * 32 not in repr(load_config(outside | {"JULIA_PHONE_KEY": "k" * 32}))


def test_the_nats_identity_is_read_from_its_variables() -> None:
    config = load_config({"JULIA_NATS_AUTH": "on", "JULIA_NATS_ROLE": "worker",
                          "NATS_CREDS": "/etc/julia/worker.creds", "NATS_NKEY_SEED": "seed.nk",
                          "NATS_TLS_CA": "ca.pem", "NATS_TLS_CERT": "c.pem",
                          "NATS_TLS_KEY": "k.pem"})
    assert config.nats_auth and config.nats_role == "worker"
    assert (config.nats_creds, config.nats_nkey_seed, config.nats_tls_ca, config.nats_tls_cert,
            config.nats_tls_key) == (Path("/etc/julia/worker.creds"), Path("seed.nk"),
                                     Path("ca.pem"), Path("c.pem"), Path("k.pem"))
    assert not load_config({}).nats_auth


def test_the_relink_tries_and_wait_reach_the_activators_saga_policy() -> None:
    assert load_config({}).relink_max_tries == 3
    policy = activator_settings(load_config({"JULIA_RELINK_MAX_TRIES": "5",
                                             "JULIA_RELINK_WAIT": "90"})).policy
    assert policy.attempts(Step.RELINK) == 5
    assert policy.wait_timeout(Step.RELINK) == timedelta(seconds=90)
    assert policy.attempts(Step.CODE) == policy.max_attempts  # the others as they were


def test_nats_url_may_list_a_clusters_servers() -> None:
    urls = "nats://n1:4222, nats://n2:4222,tls://n3:4222"
    assert load_config({"NATS_URL": urls}).nats_url == urls


def test_the_registrar_is_vps_unless_cloud_api_is_asked_for() -> None:
    assert load_config({}).registrar == "vps"
    assert load_config({"JULIA_REGISTRAR": "cloud_api"}).registrar == "cloud_api"
    with pytest.raises(ConfigError, match="JULIA_REGISTRAR must be vps or cloud_api"):
        load_config({"JULIA_REGISTRAR": "meta"})


SHARED = {"SALVY_API_URL": "https://salvy.example", "SALVY_API_TOKEN": "t",
          "EVOLUTION_API_URL": "https://evo.example", "EVOLUTION_API_KEY": "k",
          "VPS_SSH_KEY": "/etc/julia/id", "VPS_HOSTS_FILE": "/etc/julia/hosts.json",
          "JULIA_WEBHOOK_SECRET": "s", "JULIA_PUBLIC_URL": "https://julia.example",
          "JULIA_PHONE_KEY": "p" * 32}
CLOUD = {"CLOUD_API_URL": "https://graph.example", "CLOUD_API_TOKEN": "t",
         "CLOUD_API_WABA_ID": "1", "CLOUD_API_PIN": "123456"}


def test_vps_needs_no_cloud_api_variable_and_names_each_of_its_own() -> None:
    assert check_activator_config(load_config(SHARED)) is False  # no Cloud API registrar
    assert check_activator_config(load_config(SHARED | CLOUD)) is True  # both built
    for var in SHARED:
        if var == "JULIA_PHONE_KEY":
            continue
        env = {k: v for k, v in SHARED.items() if k != var}
        with pytest.raises(ConfigError, match=f"{var} is required .*JULIA_REGISTRAR=vps"):
            check_activator_config(load_config(env))


def test_cloud_api_needs_its_graph_account_and_the_hosts_too() -> None:
    env = SHARED | CLOUD | {"JULIA_REGISTRAR": "cloud_api"}
    assert check_activator_config(load_config(env)) is True
    for var in (*CLOUD, "VPS_HOSTS_FILE", "VPS_SSH_KEY"):
        without = {k: v for k, v in env.items() if k != var}
        with pytest.raises(ConfigError, match=f"{var} is required .*JULIA_REGISTRAR=cloud_api"):
            check_activator_config(load_config(without))


def test_a_partial_cloud_api_account_is_refused_naming_what_is_missing() -> None:
    env = SHARED | {k: v for k, v in CLOUD.items() if k != "CLOUD_API_PIN"}
    with pytest.raises(ConfigError, match="CLOUD_API_PIN is required with CLOUD_API_URL set"):
        check_activator_config(load_config(env))


def test_every_stream_is_bounded_and_the_transient_ones_age() -> None:
    limits = load_config({}).stream_limits
    assert set(limits) == set(Stream)
    assert all(b.max_bytes > 0 and 0 < b.max_msg_size <= b.max_bytes for b in limits.values())
    assert {s for s, b in limits.items() if b.max_age_days is not None} == {
        Stream.GATEWAY_IN, Stream.GATEWAY_OBS, Stream.DEAD_LETTER}
    assert limits[Stream.GATEWAY_IN].max_age_days * 86_400 >= GATEWAY_DEDUPE.total_seconds()


def test_stream_limits_are_overridden_one_variable_per_setting() -> None:
    limits = load_config({"JULIA_STREAM_MAX_BYTES_CHIP_EVENTS": "20GiB",
                          "JULIA_STREAM_MAX_MSG_SIZE_ROUTE_CMDS": "128kib",
                          "JULIA_STREAM_MAX_AGE_DAYS_DEAD_LETTER": "30",
                          "JULIA_STREAM_MAX_BYTES_CHIP_CMDS": "1048576"}).stream_limits
    assert limits[Stream.CHIP_EVENTS] == StreamLimits(max_bytes=20 * 1024**3,
                                                      max_msg_size=64 * 1024)
    assert limits[Stream.ROUTE_CMDS].max_msg_size == 128 * 1024
    assert limits[Stream.DEAD_LETTER].max_age_days == 30
    assert limits[Stream.CHIP_CMDS].max_bytes == 1024**2


@pytest.mark.parametrize(("env", "named"), [
    ({"JULIA_STREAM_MAX_BYTES_CHIP_EVENT": "1GiB"}, "JULIA_STREAM_MAX_BYTES_CHIP_EVENT"),
    ({"JULIA_STREAM_MAXBYTES_CHIP_EVENTS": "1GiB"}, "JULIA_STREAM_MAXBYTES_CHIP_EVENTS"),
    ({"JULIA_STREAM_MAX_BYTES_CHIP_EVENTS": "lots"}, "JULIA_STREAM_MAX_BYTES_CHIP_EVENTS"),
    ({"JULIA_STREAM_MAX_BYTES_CHIP_EVENTS": "1GB"}, "JULIA_STREAM_MAX_BYTES_CHIP_EVENTS"),
    ({"JULIA_STREAM_MAX_BYTES_CHIP_EVENTS": "10"}, "JULIA_STREAM_MAX_BYTES_CHIP_EVENTS"),
    ({"JULIA_STREAM_MAX_MSG_SIZE_CHIP_CMDS": "1TiB"}, "JULIA_STREAM_MAX_MSG_SIZE_CHIP_CMDS"),
    # history is kept for ever; the ledger's age has its own variable
    ({"JULIA_STREAM_MAX_AGE_DAYS_CHIP_EVENTS": "30"}, "JULIA_STREAM_MAX_AGE_DAYS_CHIP_EVENTS"),
    ({"JULIA_STREAM_MAX_AGE_DAYS_MSG_EVENTS": "30"}, "JULIA_LEDGER_MAX_AGE_DAYS"),
    # shorter than the dedupe window it serves: a replayed webhook would be stored again
    ({"JULIA_STREAM_MAX_AGE_DAYS_GATEWAY_IN": "0.01"}, "JULIA_STREAM_MAX_AGE_DAYS_GATEWAY_IN"),
    ({"JULIA_STREAM_MAX_MSG_SIZE_CHIP_CMDS": "2MiB"}, "JULIA_STREAM_MAX_MSG_SIZE_DEAD_LETTER"),
    ({"JULIA_STREAM_MAX_BYTES_FLEET_EVENTS": "1MiB",
      "JULIA_STREAM_MAX_MSG_SIZE_FLEET_EVENTS": "2MiB"}, "JULIA_STREAM_MAX_MSG_SIZE_FLEET_EVENTS"),
])
def test_a_bad_stream_limit_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env)


@pytest.mark.parametrize(("url", "remote"), [
    ("nats://127.0.0.1:4222", []),
    ("nats://admin:secret@localhost:4222", []),
    ("tls://[::1]:4222", []),
    ("nats://nats.prod:4222", ["nats.prod"]),
    ("nats://127.0.0.1:4222,nats://10.0.0.2:4222", ["10.0.0.2"]),
    ("postgresql:///julia", []),  # the default unix socket
    ("postgresql:///julia?host=/run/postgresql", []),
    ("postgresql://julia@%2Frun%2Fpostgresql/julia", []),
    ("postgresql://julia:pw@db.prod:5432/julia", ["db.prod"]),
    ("postgresql://julia@127.0.0.1:5432,10.1.1.1:5432/julia", ["10.1.1.1"]),
])
def test_hosts_that_are_not_this_machine(url: str, remote: list[str]) -> None:
    assert remote_hosts(url) == remote


def test_the_sandbox_runs_against_remote_servers_only_when_allowed() -> None:
    env = {"DATABASE_URL": "postgresql://julia@db.prod/julia"}
    with pytest.raises(ConfigError, match=r"DATABASE_URL points at db\.prod"):
        require_local_servers(load_config(env))
    require_local_servers(load_config(env | {"JULIA_SANDBOX_ALLOW_REMOTE": "1"}))
    with pytest.raises(ConfigError, match="JULIA_SANDBOX_ALLOW_REMOTE"):
        load_config(env | {"JULIA_SANDBOX_ALLOW_REMOTE": "yes"})


def test_the_demo_runs_on_the_sandbox_only_unless_turned_off() -> None:
    demo = load_config({})
    assert demo.demo and (demo.demo_chips, demo.demo_doctors) == (30, 2000)
    assert 86_400 / demo.demo_speed == 30  # a warm day in 30 real seconds
    assert not load_config({"JULIA_DEMO": "off"}).demo
    outside = {"EVOLUTION_API_URL": "https://evo.example", "JULIA_PHONE_KEY": "k" * 32}
    assert not load_config(outside).demo and not load_config(outside | {"JULIA_DEMO": "off"}).demo
    custom = load_config({"JULIA_DEMO_SPEED": "86400", "JULIA_DEMO_CHIPS": "6",
                          "JULIA_DEMO_DOCTORS": "200"})
    assert (custom.demo_speed, custom.demo_chips, custom.demo_doctors) == (86_400, 6, 200)
