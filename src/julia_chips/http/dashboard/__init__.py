"""The dashboard: server-rendered pages at `/` and `/ui/chips/{id}`, kept live by the
server-sent events of `/events/stream` (docs/contract.md, "The dashboard's live feed")."""
