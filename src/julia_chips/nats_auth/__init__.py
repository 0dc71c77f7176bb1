"""Who may publish and subscribe what on NATS: a user per role, least permissions each."""
