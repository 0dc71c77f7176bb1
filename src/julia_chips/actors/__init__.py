"""Actors' decisions: pure `decide` and `evolve` functions, no I/O, no clock."""
