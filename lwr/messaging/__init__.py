"""The message-queue transport: Galaxy's Pulsar runner in MQ mode, over AMQP with kombu.

``naming`` holds the exchange and queue names of the protocol, ``messages`` decodes and
validates what arrives, ``outbox`` keeps status updates on disk until the broker confirmed
them, ``publisher`` drains the outbox, ``consumer`` consumes ``setup``/``kill``/``status``
and wires it all to the job service, ``connection`` builds kombu connections from settings,
``client`` is a small client-side helper (publish a setup, wait for the final status).
"""
