"""Sign-in failure counters and lockouts, kept in the shared cache (Redis in production)."""

import contextlib
import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from config.counters import counters_hit
from config.emails import email_normalize
from config.http import client_network


@dataclass(frozen=True)
class Subject:
    """What a failure is counted against: an account or a client IP, with its own threshold."""

    key: str
    max_failures: int


def _hashed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def subjects_for(*, email: str, ip: str) -> list[Subject]:
    return [
        Subject(f"lockout:acct:{_hashed(email_normalize(email))}", settings.LOCKOUT_MAX_FAILURES),
        Subject(f"lockout:ip:{_hashed(client_network(ip))}", settings.LOCKOUT_IP_MAX_FAILURES),
    ]


def lockout_remaining(subjects: list[Subject]) -> int:
    """Seconds until every lock on these subjects lifts; 0 when none is locked."""
    until = cache.get_many([f"{s.key}:until" for s in subjects]).values()
    remaining = max((u - time.time() for u in until), default=0)
    return max(0, int(remaining + 0.999))


def lockout_attempt_begin(subjects: list[Subject]) -> list[int]:
    """Count an attempt against each subject before its password is checked; the counts.

    Counting after the check let every guess already in flight be checked: forty guesses sent at
    once were all tried against an account that locks after five. Counted first, at most the
    limit's worth are ever checked in one window: an attempt whose count passes a subject's limit
    is refused unchecked (`lockout_over`). A failure is then already counted
    (`lockout_attempt_failed`); a success clears the account's count and gives the other
    subjects their attempt back (`lockout_attempt_succeeded`).
    """
    window = settings.LOCKOUT_WINDOW_SECONDS
    return counters_hit([(f"{s.key}:count", window) for s in subjects])


def lockout_over(subjects: list[Subject], counts: list[int]) -> int:
    """Lock the subjects this attempt's counts put over their limit; seconds to wait, or 0."""
    over = [s for s, n in zip(subjects, counts, strict=True) if n > s.max_failures]
    for subject in over:
        _lock(subject)
    return lockout_remaining(over) if over else 0


def lockout_attempt_failed(subjects: list[Subject], counts: list[int]) -> list[Subject]:
    """Lock each subject whose limit this failed attempt reached; return those just locked."""
    return [
        subject
        for subject, n in zip(subjects, counts, strict=True)
        if n >= subject.max_failures and _lock(subject)
    ]


def _lock(subject: Subject) -> bool:
    """Lock `subject` for one window unless it is locked already; whether this call locked it."""
    window = settings.LOCKOUT_WINDOW_SECONDS
    return cache.add(f"{subject.key}:until", time.time() + window, timeout=window)


def lockout_attempt_succeeded(account: Subject, others: list[Subject]) -> None:
    """A correct password: the account starts afresh, and the other subjects get back the
    attempt counted against them (a busy office's sign-ins are not failures)."""
    lockout_clear(account)
    for subject in others:
        # ValueError: its window ended meanwhile, and there is nothing left to give back.
        with contextlib.suppress(ValueError):
            cache.decr(f"{subject.key}:count")


def lockout_clear(subject: Subject) -> None:
    cache.delete_many([f"{subject.key}:count", f"{subject.key}:until"])
