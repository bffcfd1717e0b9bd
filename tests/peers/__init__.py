"""Harness for lab tests against real SIP peers (kamailio, linphone-daemon).

Load the fixtures with ``pytest_plugins = ["tests.peers.plugin"]`` in the top-level conftest.
"""
