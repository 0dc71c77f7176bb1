"""The HTTP read API (aiohttp): read models, chip histories, fleet health, metrics."""
