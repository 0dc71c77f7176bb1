"""Projections: CHIP_EVENTS and FLEET_EVENTS folded into PostgreSQL read models."""
