"""Runners: the I/O around the pure actors (leases, consumers, mailboxes, replies)."""
