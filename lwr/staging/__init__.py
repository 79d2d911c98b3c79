"""Server-side staging: lwr itself fetches a job's inputs and delivers its outputs.

Used when the client asks for ``remote_transfer`` / ``remote_copy`` (always the case for
Galaxy's Pulsar runner in message-queue mode): ``actions`` works out what to move where
(pure functions), ``allow_list`` decides which URLs and paths may be touched at all,
``transfer`` moves bytes (streaming, retried, atomically placed), and ``hooks`` plugs it
into the job service's preprocessing and postprocessing, resumable after a restart.
"""
