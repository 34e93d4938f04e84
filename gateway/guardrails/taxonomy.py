"""What the guardrails detect: an explicit table of categories, each a compiled pattern,
an optional validator run on candidates only, a confidence and a cheap prefilter.

    pii               email, phone, payment_card, national_id, iban
    secrets           openai_key, anthropic_key, meterline_key, aws_access_key,
                      aws_secret_key, gcp_api_key, github_token, slack_token,
                      private_key, jwt
    prompt_injection  instruction_override, system_prompt_leak, jailbreak, role_injection

Rules that keep near misses out (each has a unit test):
- email: a dotted domain ending in an alphabetic TLD (`user@host`, `@property` are not
  addresses); not an SSH remote (`git@github.com:org/repo`, followed by `:`); not an image
  density suffix (`icon@2x.png`); not inside code (see `scanner.code_spans`).
- phone: `+` and 8-15 digits (E.164, separators allowed), a NANP number with separators
  (`(415) 555-2671`, `415-555-2671`), or a trunk-0 national number with separators and
  9-11 digits (`020 7946 0958`, `01 23 45 67 89`); bare digit runs are not phones; not
  inside code.
- payment_card: 13-19 digits (single spaces or dashes between) passing Luhn, with a
  known issuer prefix and length.
- national_id: US SSN `ddd-dd-dddd` (same separator twice; area not 000/666/9xx, group
  not 00, serial not 0000, advertising numbers excluded); UK National Insurance number
  (valid letters, prefix not BG/GB/KN/NK/NT/TN/ZZ, suffix A-D).
- iban: a known country code, that country's length and mod-97 == 1.
- keys: the provider's prefix plus a token that mixes lower case, upper case and digits
  (`sk-this-is-not-a-key` is a slug); AWS ids are `AKIA|ASIA` + 16 upper-case
  alphanumerics; a hex string alone is never a secret.
- prompt_injection: curated phrases, checked in untrusted text only (user and tool
  messages), never in system prompts (which legitimately say "never reveal your system
  prompt") and never in responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from gateway.guardrails.validators import (
    card_issuer_known,
    iban_valid,
    looks_random,
    luhn_valid,
    ssn_valid,
    uk_nino_prefix_valid,
)

__all__ = [
    "DETECTORS",
    "INPUT_ONLY",
    "Detector",
    "Finding",
    "Gate",
    "Stage",
]

Stage = Literal["input", "output"]
INPUT_ONLY: Final = frozenset({"prompt_injection"})  # a response cannot inject into itself


@dataclass(frozen=True, slots=True)
class Finding:
    guardrail: str
    category: str
    confidence: float
    start: int
    end: int


Check = Callable[[re.Match[str]], "tuple[int, int] | None"]  # the finding's span, or None


@dataclass(frozen=True, slots=True)
class Detector:
    """**Parameters:** `category`; `pattern` (compiled once); `confidence`; `check`
    (validator on a candidate: the finding's span, or None for a near miss); `literals`
    (run only if one occurs in the text); `word_start` (the match may not follow a word
    character: checked here because a lookbehind would defeat `re`'s literal prefix
    search); `lowered` (matched against the lower-cased text); `skip_in_code`."""

    category: str
    pattern: re.Pattern[str]
    confidence: float
    check: Check | None = None
    literals: tuple[str, ...] = ()
    word_start: bool = False
    lowered: bool = False
    skip_in_code: bool = False
    # Inside a Gate: the candidate needs this many digits; the match may start `before`
    # characters ahead of it (after a capital letter there, if `after_capital`) and end
    # `after` characters past it.
    min_digits: int = 0
    before: int = 2
    after: int = 1
    after_capital: bool = False


@dataclass(frozen=True, slots=True)
class Gate:
    """Detectors that run only around the candidates of `finder` (one cheap pass over the
    text), each candidate trying just the detectors it can satisfy, combined into one
    pattern (`(?P<d0>...)|(?P<d1>...)`); their patterns use named groups only."""

    finder: re.Pattern[str]
    detectors: tuple[Detector, ...]
    _plans: dict[tuple[int, ...], tuple[re.Pattern[str], int, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def plan(self, chosen: tuple[int, ...]) -> tuple[re.Pattern[str], int, int]:
        """(combined pattern, characters before, characters after) for these detectors."""
        plan = self._plans.get(chosen)
        if plan is None:
            detectors = [self.detectors[i] for i in chosen]
            pattern = "|".join(f"(?P<d{i}>{self.detectors[i].pattern.pattern})" for i in chosen)
            plan = (
                re.compile(pattern),
                max(d.before for d in detectors),
                max(d.after for d in detectors),
            )
            self._plans[chosen] = plan
        return plan


def _span(match: re.Match[str], ok: bool) -> tuple[int, int] | None:
    return match.span() if ok else None


# --- pii --------------------------------------------------------------------------------

_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_IMAGE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp"})
# Anchored at the "@" (a literal: fast search); the local part is found by walking back.
_EMAIL = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])"
)


def _email(match: re.Match[str]) -> tuple[int, int] | None:
    text, at, end = match.string, match.start(), match.end()
    start = at
    while start > 0 and at - start < 64 and text[start - 1] in _EMAIL_LOCAL:
        start -= 1
    while start < at and not text[start].isalnum():
        start += 1  # "...see.john@x.com": the local part starts at a letter or digit
    if start == at or (start > 0 and text[start - 1] in _EMAIL_LOCAL):
        return None  # no local part, or one longer than 64 characters
    if match.group(1).lower() in _IMAGE_SUFFIXES:
        return None  # icon@2x.png
    if text[end : end + 1] == ":" and text[end + 1 : end + 2].strip():
        return None  # git@github.com:org/repo.git: an SSH remote, not a mailbox
    return start, end


_PHONE = re.compile(
    r"(?<![\w+.-])(?:"
    r"(?P<intl>\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,6})"
    r"|(?P<nanp>(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[-. ])[2-9][0-9]{2}[-. ][0-9]{4})"
    r"|(?P<trunk>0[1-9][0-9]{0,3}(?:[ -][0-9]{2,6}){1,4})"
    r")(?![\w-])"
)


def _phone(match: re.Match[str]) -> tuple[int, int] | None:
    digits = sum(char.isdigit() for char in match.group())
    if match.group("intl"):
        return _span(match, 8 <= digits <= 15)
    if match.group("trunk"):
        return _span(match, 9 <= digits <= 11)
    return match.span()


_CARD = re.compile(r"(?<![\d-])[0-9](?:[ -]?[0-9]){12,18}(?![\d-])")


def _card(match: re.Match[str]) -> tuple[int, int] | None:
    digits = match.group().replace(" ", "").replace("-", "")
    return _span(match, card_issuer_known(digits) and luhn_valid(digits))


_SSN = re.compile(
    r"(?<![\d-])(?P<area>[0-9]{3})(?P<sep>[- ])(?P<group>[0-9]{2})(?P=sep)(?P<serial>[0-9]{4})"
    r"(?![\d-])"
)


def _ssn(match: re.Match[str]) -> tuple[int, int] | None:
    return _span(match, ssn_valid(match["area"], match["group"], match["serial"]))


_UK_NINO = re.compile(
    r"\b(?P<prefix>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b"
)


def _uk_nino(match: re.Match[str]) -> tuple[int, int] | None:
    return _span(match, uk_nino_prefix_valid(match["prefix"]))


_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}")


def _iban(match: re.Match[str]) -> tuple[int, int] | None:
    length = iban_valid(match.group())
    end = match.start() + length
    if not length or match.string[end : end + 1].isalnum():
        return None
    return match.start(), end


# Every number-shaped PII contains a run of 6+ digits and separators; one cheap pass finds
# the runs, and the detectors look only around them (an IBAN or NI number may start up
# to 10 characters before its first long digit run, and end with letters after it).
_DIGIT_RUN = re.compile(r"[0-9][0-9 ().-]{5,}")

# --- secrets ----------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9_-]"
_OPENAI_KEY = re.compile(rf"sk-(?!ant-)(?:proj-|svcacct-|admin-)?({_TOKEN}{{20,}})(?![\w-])")
_ANTHROPIC_KEY = re.compile(rf"sk-ant-(?:api|admin)?[0-9]{{0,2}}-?({_TOKEN}{{20,}})")
_METERLINE_KEY = re.compile(rf"ml-({_TOKEN}{{43}})(?![\w-])")
_AWS_ACCESS_KEY = re.compile(r"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET_KEY = re.compile(
    r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
_GCP_API_KEY = re.compile(rf"AIza{_TOKEN}{{35}}(?![\w-])")
_GITHUB_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
_GITHUB_TOKEN = re.compile(r"gh[pousr]_([A-Za-z0-9]{36,})|github_pat_(\w{40,})")
_SLACK_TOKEN = re.compile(r"xox[abposr]-[0-9A-Za-z-]{10,}")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|\Z)"
)
_JWT = re.compile(rf"eyJ{_TOKEN}{{8,}}\.eyJ{_TOKEN}{{8,}}\.{_TOKEN}{{10,}}(?![\w-])")


def _random_token(match: re.Match[str]) -> tuple[int, int] | None:
    token = next((group for group in match.groups() if group), "")
    return _span(match, looks_random(token))


# --- prompt injection (matched against the lower-cased text) -----------------------------

_S = r"\s+"
_OVERRIDE = re.compile(
    rf"(?:ignore|disregard|forget|override|bypass){_S}(?:(?:all|any|the|your|my|of|these)"
    rf"{_S})*(?:previous|prior|above|earlier|preceding|former|original|initial|system)"
    rf"{_S}(?:instructions?|prompts?|rules|directions|directives|guidelines|messages?|context)"
    rf"\b|forget{_S}(?:everything|all){_S}(?:you{_S}were{_S}told|above|before)\b"
)
_LEAK = re.compile(
    rf"(?:reveal|show|print|display|repeat|output|leak|dump|tell{_S}me|give{_S}me|"
    rf"what{_S}(?:is|are|was|were)){_S}(?:me{_S})?(?:your|the){_S}(?:(?:full|entire|"
    rf"original|hidden|initial|secret|exact){_S})*(?:system{_S}(?:prompt|message|"
    rf"instructions)|initial{_S}instructions|hidden{_S}instructions|instructions{_S}above|"
    rf"pre-?prompt)\b|repeat{_S}(?:the{_S})?(?:words|text){_S}above\b"
)
_JAILBREAK = re.compile(
    rf"you{_S}are{_S}now{_S}(?:dan\b|an?{_S}(?:unfiltered|uncensored|unrestricted|evil|"
    rf"jailbroken)\b|in{_S}(?:developer|god|jailbreak|dan){_S}mode\b|free{_S}(?:of|from)"
    rf"{_S}(?:all{_S})?(?:restrictions|rules|guidelines)\b)|do{_S}anything{_S}now\b|"
    rf"dan{_S}mode\b|(?:enable|enter|activate|switch{_S}to){_S}(?:developer|god|"
    rf"jailbreak|dan|unrestricted){_S}mode\b|(?:pretend|imagine){_S}(?:that{_S})?you"
    rf"{_S}(?:have{_S}no|are{_S}not{_S}bound{_S}by{_S}any){_S}(?:restrictions|rules|"
    rf"filters|guidelines|limitations)\b|(?:act|roleplay|role-play|behave){_S}as{_S}"
    rf"(?:an?{_S})?(?:unfiltered|uncensored|unrestricted|jailbroken){_S}(?:ai|assistant|"
    rf"model|chatbot)\b"
)
_ROLE = re.compile(r"<\|im_start\|>\s*system|<\|system\|>|\[/?INST\]|<<SYS>>")


DETECTORS: Final[dict[str, tuple[Detector | Gate, ...]]] = {
    # Order is priority: when two findings of one guardrail overlap, the earlier wins.
    "pii": (
        Gate(
            _DIGIT_RUN,
            (
                Detector(
                    "iban",
                    _IBAN,
                    0.95,
                    _iban,
                    min_digits=6,
                    before=10,
                    after=34,
                    after_capital=True,
                ),
                Detector("payment_card", _CARD, 0.95, _card, min_digits=13),
                Detector("national_id", _SSN, 0.85, _ssn, min_digits=9),
                Detector(
                    "national_id",
                    _UK_NINO,
                    0.85,
                    _uk_nino,
                    min_digits=6,
                    before=3,
                    after=3,
                    after_capital=True,
                ),
                Detector("phone", _PHONE, 0.7, _phone, skip_in_code=True, min_digits=8),
            ),
        ),
        Detector("email", _EMAIL, 0.9, _email, literals=("@",), skip_in_code=True),
    ),
    "secrets": (
        Detector("private_key", _PRIVATE_KEY, 0.99, literals=("-----BEGIN",)),
        Detector(
            "anthropic_key", _ANTHROPIC_KEY, 0.99, _random_token, ("sk-ant-",), word_start=True
        ),
        Detector("openai_key", _OPENAI_KEY, 0.95, _random_token, ("sk-",), word_start=True),
        Detector("meterline_key", _METERLINE_KEY, 0.95, _random_token, ("ml-",), word_start=True),
        Detector("aws_access_key", _AWS_ACCESS_KEY, 0.95, None, ("AKIA", "ASIA"), word_start=True),
        Detector("aws_secret_key", _AWS_SECRET_KEY, 0.9, _random_token, ("ecret", "ECRET")),
        Detector("gcp_api_key", _GCP_API_KEY, 0.95, None, ("AIza",), word_start=True),
        Detector("github_token", _GITHUB_TOKEN, 0.95, _random_token, _GITHUB_PREFIXES, True),
        Detector("slack_token", _SLACK_TOKEN, 0.9, None, ("xox",), word_start=True),
        Detector("jwt", _JWT, 0.9, None, ("eyJ",), word_start=True),
    ),
    "prompt_injection": (
        Detector(
            "instruction_override",
            _OVERRIDE,
            0.9,
            literals=("ignor", "disregard", "forget", "overrid", "bypass"),
            word_start=True,
            lowered=True,
        ),
        Detector(
            "system_prompt_leak",
            _LEAK,
            0.85,
            literals=("system", "instructions", "prompt", "above"),
            word_start=True,
            lowered=True,
        ),
        Detector(
            "jailbreak",
            _JAILBREAK,
            0.85,
            literals=(
                "now",
                "mode",
                "pretend",
                "imagine",
                "unfiltered",
                "uncensored",
                "unrestricted",
                "jailbroken",
            ),
            word_start=True,
            lowered=True,
        ),
        Detector("role_injection", _ROLE, 0.8, literals=("<|", "INST]", "<<SYS>>")),
    ),
}
