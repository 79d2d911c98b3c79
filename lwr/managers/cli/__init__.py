"""queued_cli: batch systems driven through their command-line tools, locally or over SSH.

A *job plugin* (``job_plugins/``) knows one batch system's commands and output formats and is
pure: it builds argument lists and parses text, so it is tested on captured output. A *shell
plugin* (``shell_plugins/``) runs an argument list somewhere (here, or on a submit host over SSH).
"""
