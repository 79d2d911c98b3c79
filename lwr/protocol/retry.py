"""The one retry/backoff policy: capped exponential delays with jitter, for every retried operation.

The HTTP client's idempotent calls, server-side staging's transfers and the AMQP consumer's and
publisher's reconnections all wait by it (as kombu's ``Connection.ensure`` serves every broker
operation), so their pacing cannot drift apart. Pure: it computes delays, the caller sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: The spread of a delay: each is drawn from [1 - JITTER, 1] times the nominal one, so clients that
#: failed together do not come back together.
JITTER = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently an operation is tried again.

    ``RetryPolicy(attempts=4, backoff=0.5, cap=8.0)`` waits about 0.5 s, 1 s, 2 s between its four
    tries; ``attempts=0`` means no limit (reconnection loops, which stop by other means).
    """

    #: Total tries (the first one included); 0 for no limit.
    attempts: int = 4
    #: Delay before the first retry, in seconds; doubled at each further retry.
    backoff: float = 0.5
    #: Upper bound of one delay.
    cap: float = 8.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), with a little jitter."""
        nominal = min(max(self.cap, self.backoff), self.backoff * 2 ** min(retry - 1, 64))
        return nominal * random.uniform(1.0 - JITTER, 1.0)

    def gives_up_after(self, attempt: int) -> bool:
        """True once ``attempt`` (1-based) was the last try allowed."""
        return self.attempts > 0 and attempt >= self.attempts


class Backoff:
    """A running count of failures against a policy, reset by a success (the reconnecting loops)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._failures = 0

    def next(self) -> float:
        """The wait after one more failure."""
        self._failures += 1
        return self.policy.delay(self._failures)

    def reset(self) -> None:
        self._failures = 0
