"""Each Evolution instance's webhook secret is its own: derived, never the master."""

from __future__ import annotations

from julia_chips.gateways.evolution.instance_secret import instance_secret, secret_matches
from julia_chips.gateways.evolution.wire import InstanceSpec, WebhookTarget, create_body

MASTER = "master-secret-of-the-fleet"


def test_one_instances_secret_does_not_speak_for_another() -> None:
    mine = instance_secret(MASTER, "chip-a")
    assert secret_matches(MASTER, "chip-a", mine)
    assert not secret_matches(MASTER, "chip-b", mine)
    assert not secret_matches(MASTER, "chip-a", MASTER)  # the master itself opens nothing


def test_an_unset_master_matches_nothing() -> None:
    assert not secret_matches(None, "chip-a", instance_secret("", "chip-a"))
    assert not secret_matches("", "chip-a", instance_secret("", "chip-a"))


def test_the_create_request_carries_the_instances_own_secret() -> None:
    """What the activator sets in the instance's webhook config, on the VPS."""
    spec = InstanceSpec(name="chip-a", webhook=WebhookTarget(url="https://x/webhooks/evolution",
                                                             master_secret=MASTER))
    headers = create_body(spec).webhook.headers
    assert headers == {"x-julia-secret": instance_secret(MASTER, "chip-a")}
    assert MASTER not in headers.values()
