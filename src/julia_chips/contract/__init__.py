"""Wire types: commands and events as plain msgspec structs, with no behaviour."""
