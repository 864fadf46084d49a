"""How every part reaches the broker and the database: the MQTT client factory and connect
handshake, the shared settings pieces, and database connections with errors that say what to do.

A leaf: it imports only ``protocol`` (for ``MqttEndpoint``). The in-car agent imports
``connections.mqtt`` alone, never the database half.
"""
