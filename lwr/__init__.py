"""lwr: a remote job execution server for Galaxy, speaking the Pulsar protocol."""

__version__ = "0.1.0"
