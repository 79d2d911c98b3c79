"""Public-server mode: a Galaxy toolbox says which tools may run, their validators how (``tool_config_files``)."""
