"""MQTT: devices and scripts talk to the assistant over a broker (see manifest)."""
