"""Real servers shipped as wheels, started when NATS_URL / DATABASE_URL are not set."""
