"""The states a job can be in, and which of them are final."""

from __future__ import annotations

from enum import Enum

from lwr.protocol.names import FINAL_STATUSES


class JobState(str, Enum):
    """A job's life: set up, staged, queued, running, then exactly one final state.

    ``SETUP`` is lwr's own (the job directory exists, files are being staged, it was not
    submitted yet); the Pulsar protocol reports it as ``preprocessing``.
    """

    SETUP = "setup"
    PREPROCESSING = "preprocessing"
    QUEUED = "queued"
    RUNNING = "running"
    POSTPROCESSING = "postprocessing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def wire_name(self) -> str:
        """The status string the Pulsar protocol uses for this state."""
        if self is JobState.SETUP:
            return JobState.PREPROCESSING.value
        if self is JobState.POSTPROCESSING:
            return JobState.RUNNING.value
        return self.value


FINAL_STATES = frozenset(JobState(status) for status in FINAL_STATUSES)
