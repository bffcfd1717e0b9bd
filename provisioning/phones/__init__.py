"""The phone-facing HTTP endpoint: configuration files, firmware, sightings."""
