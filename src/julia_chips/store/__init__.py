"""Storage on JetStream: streams and buckets, the chip event log, snapshots, leases."""
