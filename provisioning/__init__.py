"""Plug & Phone provisioning server."""
