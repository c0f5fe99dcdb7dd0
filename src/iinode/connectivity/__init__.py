"""Adapters to equipment and messaging: MQTT (Sparkplug B, JSON), OPC UA, Modbus TCP, NATS.

Submodules are imported on use (``iinode.connectivity.mqtt``, ``.opcua``, ``.modbus``,
``.nats_bus``, ``.broker``) so that loading one protocol does not load every library.
"""
