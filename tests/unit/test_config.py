"""Bad configuration stops start-up with a message naming the variable; secrets never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from julia_chips.config import ConfigError, load_config


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
    config = load_config({"JULIA_API_TOKEN": "tok-123", "EVOLUTION_API_KEY": "evo-456"})
    assert "tok-123" not in repr(config) and "evo-456" not in repr(config)
    assert "api_token='<set>'" in repr(config)


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


def test_nats_url_may_list_a_clusters_servers() -> None:
    urls = "nats://n1:4222, nats://n2:4222,tls://n3:4222"
    assert load_config({"NATS_URL": urls}).nats_url == urls


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
