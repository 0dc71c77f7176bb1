"""Taking a lease over from a dead holder before its TTL: what standbys see of the lease keys
(`sightings`, pure; `board`, the KV watch that feeds it) and the proof that a holder's
connection is gone (`presence`). `jetstream/part_lease.py` and `chip/worker.py` use them."""
