"""The Pulsar wire protocol as lwr speaks it: pure definitions, no I/O.

Every rule of the protocol is written once here and used by the server, the HTTP client and
the AMQP client alike.
"""
