"""Sign-in failure counters and lockouts, kept in the shared cache (Redis in production)."""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from config.counters import counter_hit


@dataclass(frozen=True)
class Subject:
    """What a failure is counted against: an account or a client IP, with its own threshold."""

    key: str
    max_failures: int


def _hashed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def subjects_for(*, email: str, ip: str) -> list[Subject]:
    return [
        Subject(f"lockout:acct:{_hashed(email.strip().lower())}", settings.LOCKOUT_MAX_FAILURES),
        Subject(f"lockout:ip:{_hashed(ip)}", settings.LOCKOUT_IP_MAX_FAILURES),
    ]


def lockout_remaining(subjects: list[Subject]) -> int:
    """Seconds until every lock on these subjects lifts; 0 when none is locked."""
    until = cache.get_many([f"{s.key}:until" for s in subjects]).values()
    remaining = max((u - time.time() for u in until), default=0)
    return max(0, int(remaining + 0.999))


def lockout_register_failure(subjects: list[Subject]) -> list[Subject]:
    """Count one failure against each subject; return the subjects that just became locked."""
    window = settings.LOCKOUT_WINDOW_SECONDS
    locked = []
    for subject in subjects:
        count = counter_hit(f"{subject.key}:count", ttl=window)
        if count >= subject.max_failures:
            cache.set(f"{subject.key}:until", time.time() + window, timeout=window)
            locked.append(subject)
    return locked


def lockout_clear(subject: Subject) -> None:
    cache.delete_many([f"{subject.key}:count", f"{subject.key}:until"])
