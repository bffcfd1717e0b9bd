"""Per-family tests: real requests, rendered keys per slot."""
