"""Subjects (ARCHITECTURE §3): typed strings naming who a decision or budget applies to.

`key:<key_id>`, `session:<session_id>`, `team:<org>/<team>`, `org:<org>`,
`project:<org>/<project>`, `user:<user>`. A request's subjects are derived once per key
(at control-record time) plus its session, so the hot path only does dict lookups.
"""

from __future__ import annotations

__all__ = ["KINDS", "SubjectError", "key_subjects", "request_subjects", "validate_subject"]

KINDS = ("key", "session", "team", "org", "project", "user")
_SCOPED = frozenset({"team", "project"})  # `<org>/<name>`
_MAX_CHARS = 512


class SubjectError(ValueError):
    """A subject string that does not follow the typed-subject grammar."""


def validate_subject(subject: str) -> str:
    """The subject unchanged, or SubjectError saying what is wrong with it."""
    if not isinstance(subject, str) or not subject:
        raise SubjectError("subject is empty; expected e.g. 'key:<key_id>' or 'team:<org>/<team>'")
    if len(subject) > _MAX_CHARS:
        raise SubjectError(f"subject is longer than {_MAX_CHARS} characters")
    kind, sep, name = subject.partition(":")
    if not sep or kind not in KINDS:
        raise SubjectError(
            f"subject '{subject}' must start with one of " + ", ".join(f"'{k}:'" for k in KINDS)
        )
    if not name.strip() or name != name.strip():
        raise SubjectError(f"subject '{subject}' has an empty or padded name after '{kind}:'")
    if kind in _SCOPED:
        org, slash, rest = name.partition("/")
        if not slash or not org or not rest or "/" in rest:
            raise SubjectError(f"subject '{subject}' must look like '{kind}:<org>/<{kind}>'")
    elif kind == "org" and "/" in name:
        raise SubjectError(f"subject '{subject}': an org name cannot contain '/'")
    return subject


def key_subjects(key_id: str, org: str, team: str, project: str, user: str) -> tuple[str, ...]:
    """The subjects every request of one key carries, most specific first."""
    subjects = [f"key:{key_id}"]
    if user:
        subjects.append(f"user:{user}")
    if org and team:
        subjects.append(f"team:{org}/{team}")
    if org and project:
        subjects.append(f"project:{org}/{project}")
    if org:
        subjects.append(f"org:{org}")
    return tuple(subjects)


def request_subjects(key_subjects: tuple[str, ...], session_id: str | None) -> tuple[str, ...]:
    """A request's subjects: its key's, plus `session:<x-session-id>` when sent."""
    if session_id:
        return (*key_subjects, f"session:{session_id}")
    return key_subjects
