"""Checksums and structural rules that turn a pattern candidate into a finding.

Run only on regex candidates (never on whole texts), so they may be plain Python.
"""

from __future__ import annotations

__all__ = [
    "IBAN_LENGTHS",
    "card_issuer_known",
    "iban_valid",
    "looks_random",
    "luhn_valid",
    "ssn_valid",
    "uk_nino_prefix_valid",
]

# ISO 13616 lengths of the countries whose IBANs we recognise; an unknown country code is
# not an IBAN (keeps `AB12 CDEF ...` product codes out).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip

# UK National Insurance prefixes never issued (HMRC).
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
# SSNs published in advertising and never valid for a person.
_SSN_EXAMPLES = frozenset({"078051120", "219099999"})


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_issuer_known(digits: str) -> bool:
    """Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay: prefix and length agree."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    if two == 62:
        return 16 <= n <= 19
    return False


def iban_valid(candidate: str) -> int:
    """Length of the valid IBAN `candidate` starts with (spaces skipped), or 0.

    The country fixes the length, so trailing text the pattern swallowed is ignored."""
    compact = candidate.replace(" ", "")
    length = IBAN_LENGTHS.get(compact[:2], 0)
    if not length or len(compact) < length:
        return 0
    iban = compact[:length]
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(char, 36)) for char in rearranged))
    except ValueError:
        return 0
    if number % 97 != 1:
        return 0
    # Map back to a span in `candidate` (which may contain spaces).
    seen = 0
    for index, char in enumerate(candidate):
        if char != " ":
            seen += 1
            if seen == length:
                return index + 1
    return 0


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_EXAMPLES


def uk_nino_prefix_valid(prefix: str) -> bool:
    return prefix.upper() not in _NINO_BAD_PREFIXES


def looks_random(token: str) -> bool:
    """Generated keys mix lower case, upper case and digits; words and slugs do not."""
    lower = upper = digit = False
    for char in token:
        if char.islower():
            lower = True
        elif char.isupper():
            upper = True
        elif char.isdigit():
            digit = True
    return lower and upper and digit
