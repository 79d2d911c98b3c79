"""The ways a client reaches a server: one contract (:mod:`.base`), one module per transport.

:mod:`.rest` speaks lwr's (and Pulsar's) HTTP API; :mod:`.amqp` speaks the Pulsar message-queue
protocol. :class:`lwr.client.client.LwrClient` takes either and asks its capabilities, never its type.
"""
