"""Pushing changes to phones: the durable queue, the check-sync NOTIFY, proof of delivery."""
