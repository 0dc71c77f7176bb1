"""Edges to the outside world: Evolution API, Salvy, VPS hosts, and their webhooks.

Everything that leaves this package is a typed struct; no dict or client type reaches a `model/`.
"""
