"""The demo's script, pure: which chips, how much to send, when the world intervenes."""
