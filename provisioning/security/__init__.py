"""Phones proving who they are: HTTPS, digest, factory certificates, first-contact binding,
scanner bans (see the README's "Security" section)."""
