"""What an admin watches: Prometheus metrics and error reports to Sentry."""
