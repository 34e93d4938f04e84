"""Subjects (ARCHITECTURE §3): typed strings naming who a decision, budget or policy is for.

`key:<key_id>`, `session:<session_id>`, `team:<org>/<team>`, `org:<org>`,
`project:<org>/<project>`, `user:<user>`.

The gateway (producer of requests, consumer of decisions), the processors (budgets,
detectors), ingest (spend, control rows) and the tools all build and read subjects here,
so the grammar is written once. These are plain string functions, not pydantic models:
the gateway calls `request_subjects` on every request.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "KINDS",
    "SubjectError",
    "SubjectKind",
    "attribution_subjects",
    "key_id_of",
    "key_subject",
    "org_of",
    "org_subject",
    "parse_scoped",
    "parse_subject",
    "project_subject",
    "request_subjects",
    "session_subject",
    "subject",
    "team_subject",
    "user_subject",
    "validate_subject",
]

SubjectKind = Literal["key", "session", "team", "org", "project", "user"]
KINDS: Final[tuple[SubjectKind, ...]] = ("key", "session", "team", "org", "project", "user")
_SCOPED: Final = frozenset({"team", "project"})  # `<org>/<name>`
_MAX_CHARS: Final = 512


class SubjectError(ValueError):
    """A subject string that does not follow the typed-subject grammar."""


def subject(kind: SubjectKind, name: str) -> str:
    """`<kind>:<name>`; for team and project, `name` is already `<org>/<name>`."""
    return f"{kind}:{name}"


def key_subject(key_id: str) -> str:
    return f"key:{key_id}"


def session_subject(session_id: str) -> str:
    return f"session:{session_id}"


def user_subject(user: str) -> str:
    return f"user:{user}"


def org_subject(org: str) -> str:
    return f"org:{org}"


def team_subject(org: str, team: str) -> str:
    return f"team:{org}/{team}"


def project_subject(org: str, project: str) -> str:
    return f"project:{org}/{project}"


def parse_subject(value: str) -> tuple[str, str]:
    """(kind, name) split at the first ':' without validating; no ':' gives ("", value)."""
    kind, separator, name = value.partition(":")
    return (kind, name) if separator else ("", value)


def parse_scoped(name: str) -> tuple[str, str]:
    """A team or project subject's name `<org>/<name>` -> (org, name); a missing part is ''."""
    org, _, rest = name.partition("/")
    return org, rest


def key_id_of(value: str) -> str | None:
    """The key id of a `key:<key_id>` subject; None for any other subject."""
    kind, name = parse_subject(value)
    return name if kind == "key" else None


def org_of(value: str) -> str:
    """`org:<org>`, `team:<org>/<team>`, `project:<org>/<project>` -> `<org>`; else ''."""
    kind, name = parse_subject(value)
    if kind == "org" or kind in _SCOPED:
        return parse_scoped(name)[0]
    return ""


def validate_subject(value: str) -> str:
    """The subject unchanged, or SubjectError saying what is wrong with it."""
    if not isinstance(value, str) or not value:
        raise SubjectError("subject is empty; expected e.g. 'key:<key_id>' or 'team:<org>/<team>'")
    if len(value) > _MAX_CHARS:
        raise SubjectError(f"subject is longer than {_MAX_CHARS} characters")
    kind, sep, name = value.partition(":")
    if not sep or kind not in KINDS:
        raise SubjectError(
            f"subject '{value}' must start with one of " + ", ".join(f"'{k}:'" for k in KINDS)
        )
    if not name.strip() or name != name.strip():
        raise SubjectError(f"subject '{value}' has an empty or padded name after '{kind}:'")
    if kind in _SCOPED:
        org, slash, rest = name.partition("/")
        if not slash or not org or not rest or "/" in rest:
            raise SubjectError(f"subject '{value}' must look like '{kind}:<org>/<{kind}>'")
    elif kind == "org" and "/" in name:
        raise SubjectError(f"subject '{value}': an org name cannot contain '/'")
    return value


def attribution_subjects(
    key_id: str | None, org: str, team: str, project: str, user: str
) -> tuple[str, ...]:
    """The subjects a request's attribution counts against (its budgets, decisions and
    policies), most specific first; team and project need the org."""
    subjects = [f"key:{key_id}"] if key_id else []
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
    """A request's subjects: its key's (`attribution_subjects`, derived once per key),
    plus `session:<x-session-id>` when sent. On the gateway's hot path: one tuple at most."""
    if session_id:
        return (*key_subjects, f"session:{session_id}")
    return key_subjects
