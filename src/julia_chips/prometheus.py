"""Pipeline figures for Prometheus (served on /metrics by the HTTP app)."""

from __future__ import annotations

from prometheus_client import Counter

COMMANDS_PROCESSED = Counter("julia_commands_processed_total", "Chip commands handled", ["ok"])
EVENTS_APPENDED = Counter("julia_events_appended_total", "Chip events appended")
DEAD_LETTERS = Counter("julia_dead_letters_total", "Messages sent to the dead letters", ["kind"])
COMMANDS_OK = COMMANDS_PROCESSED.labels(ok="true")  # bound once: labels() costs a lookup
COMMANDS_REFUSED = COMMANDS_PROCESSED.labels(ok="false")
# Messages on `chip.evt.*` that are not a chip event of the subject's chip, per reader that
# skipped them (jetstream/stored_chip_event.py): nonzero means someone wrote into the audit log.
FOREIGN_CHIP_EVENTS = Counter("julia_foreign_chip_events_total",
                              "Foreign messages skipped in CHIP_EVENTS", ["reader"])
# Messages a follower could not decode and stepped over, per reader and stream
# (jetstream/follower.py): nonzero means a writer and its readers disagree on the wire.
UNDECODABLE_MESSAGES = Counter("julia_undecodable_messages_total",
                               "Stored messages a follower could not decode and skipped",
                               ["reader", "stream"])
# Reads that ended before the reader's own append, by reader (activation/activator.py): a
# replica or an old leader behind answered; read again, never acted on.
STALE_READS = Counter("julia_stale_reads_total",
                      "Reads that missed the reader's own append and were read again", ["reader"])
# One chip's work that raised in a fleet-wide loop (monitor, scheduler, activator), by part:
# skipped for that chip so the rest of the fleet goes on (chip_failures.py).
CHIP_FAILURES = Counter("julia_chip_failures_total",
                        "Per-chip work that raised and was skipped for that chip", ["part"])
