"""The host side of Julia Chips' VPS commands (`README.md` beside this file).

The activator runs `julia-gateway-status`, `-request-code`, `-register` and `-release` on a
host over SSH (`julia_chips/gateways/vps/client.py`) and reads one JSON object from stdout.
These commands answer by asking the host's own services over HTTP: its Evolution API (how
many gateway instances run, whether it answers) and its registration agent (the operator's
tool that asks WhatsApp for an SMS code and registers a number with it). Where they are,
and their keys, come from an environment file (`/etc/julia-gateway.env`, or the file
`JULIA_GATEWAY_ENV` names), never from the command line, so no key shows in `ps`.

Python 3 standard library only (3.9 or newer): a VPS has `python3` and nothing else need be
installed. Exit 0 with the command's answer (a refusal such as `{"requested": false, ...}` is
an answer); exit 1 when it could not be done (a service down, a bad answer, no env file) and
exit 2 for bad arguments, both with `{"error": "<reason>"}` on stdout and the reason on
stderr (which the SSH client reports). Reasons never carry a key, a token or the number.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, NoReturn

ENV_FILE = "/etc/julia-gateway.env"
DEFAULT_TIMEOUT = 60.0  # seconds per HTTP call; the SSH client gives a command 120 s
MAX_ANSWER = 64 * 1024  # bytes read from a service's answer


class Failure(Exception):
    """The command could not be carried out; `reason` is safe to print."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class _Arguments(argparse.ArgumentParser):
    """argparse that fails with our JSON instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise Failure(f"bad arguments: {message}", exit_code=2)


# The environment file ----------------------------------------------------------------------


def read_env(path: str) -> dict[str, str]:
    """`NAME=value` lines (shell quoting allowed, `#` comments); refused when others may read
    it, since it holds the keys of the host's services."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise Failure(f"environment file {path} unreadable: {exc.strerror}") from None
    if mode & stat.S_IROTH:
        raise Failure(f"environment file {path} is readable by others: chmod 600 it")
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, raw = text.partition("=")
        name = name.strip()
        if name.startswith("export "):
            name = name[len("export "):].strip()
        if not sep or not name.replace("_", "").isalnum():
            raise Failure(f"environment file {path}: line {number} is not NAME=value")
        try:
            words = shlex.split(raw)
        except ValueError:
            raise Failure(f"environment file {path}: line {number} has unbalanced quotes"
                          ) from None
        values[name] = " ".join(words)
    return values


class Settings:
    """What the commands read from the environment file."""

    def __init__(self, env: dict[str, str], path: str) -> None:
        self._env = env
        self._path = path
        raw = env.get("HTTP_TIMEOUT") or str(DEFAULT_TIMEOUT)
        try:
            self.timeout = float(raw)
        except ValueError:
            raise Failure(f"HTTP_TIMEOUT in {path} must be a number of seconds") from None
        if not 0 < self.timeout <= 110:
            raise Failure(f"HTTP_TIMEOUT in {path} must be between 0 and 110 seconds")

    def required(self, name: str) -> str:
        value = self._env.get(name)
        if not value:
            raise Failure(f"{name} is not set in {self._path}")
        return value

    def url(self, name: str) -> str:
        """An http(s) URL without credentials (those go in the key variables, never in a URL
        that could be printed)."""
        url = self.required(name)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Failure(f"{name} in {self._path} must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise Failure(f"{name} in {self._path} must not carry credentials: use the "
                          "key variable")
        return url.rstrip("/")

    def evolution(self) -> tuple[str, dict[str, str]]:
        return self.url("EVOLUTION_URL"), {"apikey": self.required("EVOLUTION_API_KEY")}

    def agent(self) -> tuple[str, dict[str, str]]:
        token = self._env.get("AGENT_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.url("AGENT_URL"), headers


def load_settings(environ: dict[str, str]) -> Settings:
    path = environ.get("JULIA_GATEWAY_ENV") or ENV_FILE
    return Settings(read_env(path), path)


# HTTP --------------------------------------------------------------------------------------


def call(service: str, method: str, url: str, headers: dict[str, str], timeout: float,
         body: dict[str, str] | None = None) -> Any:
    """The JSON a service answered with 200; Failure naming `service` otherwise. Neither the
    URL nor the headers go into a reason: a URL may carry a password, the headers do."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **headers, "Accept": "application/json",
        **({"Content-Type": "application/json"} if data is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        raise Failure(f"{service} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Failure(f"{service} unreachable: {_describe(reason)}") from None
    if len(raw) > MAX_ANSWER:
        raise Failure(f"{service} answered more than {MAX_ANSWER} bytes")
    try:
        return json.loads(raw)
    except ValueError:
        raise Failure(f"{service} answered something other than JSON") from None


def _describe(reason: object) -> str:
    """`ConnectionRefusedError`, `timed out`: what went wrong, without addresses."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, BaseException):
        return type(reason).__name__
    return str(reason)[:100]


def _field(answer: Any, name: str, kind: type, service: str, optional: bool = False) -> Any:
    """`answer[name]`, checked to be a `kind` (or absent/null when `optional`)."""
    if not isinstance(answer, dict):
        raise Failure(f"{service} answered {type(answer).__name__}, not an object")
    value = answer.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Failure(f"{service} answered no {kind.__name__} {name!r}")
    return value[:300] if isinstance(value, str) else value


# Commands ----------------------------------------------------------------------------------


def status(settings: Settings, _args: argparse.Namespace) -> dict[str, Any]:
    """Used slots = the instances on the host's Evolution API (each chip's gateway instance,
    Baileys or Cloud API); a gateway that does not answer is reported down, not an error."""
    url, headers = settings.evolution()
    try:
        instances = call("evolution", "GET", url + "/instance/fetchInstances", headers,
                         settings.timeout)
    except Failure as down:
        return {"gateway_up": False, "used_slots": 0, "reason": down.reason}
    if not isinstance(instances, list):
        return {"gateway_up": False, "used_slots": 0,
                "reason": "evolution answered something other than a list of instances"}
    return {"gateway_up": True, "used_slots": len(instances)}


def request_code(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    url, headers = settings.agent()
    answer = call("agent", "POST", url + "/request-code", headers, settings.timeout,
                  {"number": args.number})
    requested = _field(answer, "requested", bool, "agent")
    reason = _field(answer, "reason", str, "agent", optional=True)
    return _answer({"requested": requested}, reason, requested)


def register(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    url, headers = settings.agent()
    answer = call("agent", "POST", url + "/register", headers, settings.timeout,
                  {"number": args.number, "code": args.code})
    registered = _field(answer, "registered", bool, "agent")
    out: dict[str, Any] = {"registered": registered}
    instance = _field(answer, "instance", str, "agent", optional=True)
    if registered and instance is not None:
        out["instance"] = instance
    return _answer(out, _field(answer, "reason", str, "agent", optional=True), registered)


def release(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    url, headers = settings.agent()
    answer = call("agent", "POST", url + "/release", headers, settings.timeout,
                  {"number": args.number})
    return {"released": _field(answer, "released", bool, "agent")}


def _answer(out: dict[str, Any], reason: str | None, done: bool) -> dict[str, Any]:
    """A refusal says why (the activator drops the code when the reason names it)."""
    if not done:
        out["reason"] = reason or "no reason given"
    return out


# Arguments ---------------------------------------------------------------------------------


def _digits(low: int, high: int) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if not (raw.isascii() and raw.isdigit() and low <= len(raw) <= high):
            size = f"{low}" if low == high else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {size} digits")
        return raw
    return check


NUMBER = _digits(10, 15)  # E.164 without the "+", as the activator sends it
CODE = _digits(6, 6)

Command = Callable[[Settings, argparse.Namespace], dict[str, Any]]
COMMANDS: dict[str, tuple[Command, list[str]]] = {
    "status": (status, []),
    "request-code": (request_code, ["number"]),
    "register": (register, ["number", "code"]),
    "release": (release, ["number"]),
}


def _parse(name: str, argv: list[str]) -> argparse.Namespace:
    parser = _Arguments(prog=f"julia-gateway-{name}", add_help=False)
    for option in COMMANDS[name][1]:
        parser.add_argument(f"--{option}", required=True,
                            type=NUMBER if option == "number" else CODE)
    return parser.parse_args(argv)


def main(name: str, argv: list[str], environ: dict[str, str] | None = None) -> int:
    """Run command `name` (a key of COMMANDS); print one JSON object; the exit status."""
    command = COMMANDS[name][0]
    try:
        args = _parse(name, argv)
        out = command(load_settings(dict(os.environ) if environ is None else environ), args)
    except Failure as failure:
        print(json.dumps({"error": failure.reason}))
        print(f"julia-gateway-{name}: {failure.reason}", file=sys.stderr)
        return failure.exit_code
    print(json.dumps(out))
    return 0
