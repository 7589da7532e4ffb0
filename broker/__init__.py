"""A portable MQTT broker core: no I/O, no platform imports."""

VERSION = "0.1.0"
