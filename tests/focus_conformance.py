"""FOCUS 1.2 conformance rules, written from the specification (not from our exporter), so
a test can check an export's header and every row against them."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

# The columns FOCUS 1.2 marks Mandatory.
MANDATORY = {
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
}
# Conditional / recommended columns the issue requires of us.
REQUIRED_HERE = {
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "SkuId",
    "SkuPriceId",
    "Tags",
}
# Every column defined by FOCUS 1.2; anything else must carry the x_ prefix.
DEFINED = MANDATORY | {
    "AvailabilityZone",
    "BillingAccountType",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeFrequency",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "InvoiceId",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
}
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
CHARGE_FREQUENCIES = {"One-Time", "Recurring", "Usage-Based"}
SERVICE_CATEGORIES = {
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
}
AI_SUBCATEGORIES = {
    "AI Platforms",
    "Bots",
    "Generative AI",
    "Machine Learning",
    "Natural Language Processing",
    "Other (AI and Machine Learning)",
}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")  # ISO 8601 UTC, seconds
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def check_header(header: list[str]) -> list[str]:
    problems = [f"missing column {c}" for c in sorted((MANDATORY | REQUIRED_HERE) - set(header))]
    problems += [f"undefined column {c}" for c in header if c not in DEFINED and c[:2] != "x_"]
    if len(set(header)) != len(header):
        problems.append("duplicate columns")
    return problems


def _decimal(row: dict, column: str, problems: list[str], *, nullable: bool = False):
    text = row[column]
    if text == "":
        if not nullable:
            problems.append(f"{column} is null")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        problems.append(f"{column}={text!r} is not a decimal")
        return None
    if not value.is_finite() or "e" in text.lower():
        problems.append(f"{column}={text!r} is not a plain decimal")
    return value


def _product(unit: Decimal, quantity: Decimal, cost: Decimal) -> bool:
    """cost == unit x quantity, up to the rounding of the unit price at its last digit (a
    price averaged over a day of tiered or mixed prices need not terminate)."""
    half_ulp = Decimal(1).scaleb(unit.as_tuple().exponent) / 2
    return abs(unit * quantity - cost) <= half_ulp * quantity


def check_row(row: dict) -> list[str]:
    """Every problem with one row (empty text = null)."""
    problems: list[str] = []
    for column in MANDATORY - {"ChargeClass"}:
        if row[column] == "":
            problems.append(f"{column} is null")
    for column in (
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
    ):
        if not _DATETIME.match(row[column]):
            problems.append(f"{column}={row[column]!r} is not an ISO 8601 UTC datetime")
    if row["ChargePeriodStart"] >= row["ChargePeriodEnd"]:
        problems.append("charge period is empty")
    if not row["BillingPeriodStart"] <= row["ChargePeriodStart"] < row["BillingPeriodEnd"]:
        problems.append("charge period outside its billing period")
    if not _CURRENCY.match(row["BillingCurrency"]):
        problems.append("BillingCurrency is not an ISO 4217 code")
    if row["ChargeCategory"] not in CHARGE_CATEGORIES:
        problems.append(f"ChargeCategory={row['ChargeCategory']!r}")
    if row["ChargeClass"] not in ("", "Correction"):
        problems.append(f"ChargeClass={row['ChargeClass']!r}")
    if row["ChargeFrequency"] not in CHARGE_FREQUENCIES:
        problems.append(f"ChargeFrequency={row['ChargeFrequency']!r}")
    if row["ChargeCategory"] == "Usage" and row["ChargeFrequency"] != "Usage-Based":
        problems.append("a Usage charge must be Usage-Based")
    if row["ServiceCategory"] not in SERVICE_CATEGORIES:
        problems.append(f"ServiceCategory={row['ServiceCategory']!r}")
    subcategory = row.get("ServiceSubcategory")
    if (
        subcategory
        and row["ServiceCategory"] == "AI and Machine Learning"
        and subcategory not in AI_SUBCATEGORIES
    ):
        problems.append(f"ServiceSubcategory={row['ServiceSubcategory']!r}")
    billed = _decimal(row, "BilledCost", problems)
    effective = _decimal(row, "EffectiveCost", problems)
    contracted = _decimal(row, "ContractedCost", problems)
    list_cost = _decimal(row, "ListCost", problems)
    quantity = _decimal(row, "PricingQuantity", problems)
    usage = row["ChargeCategory"] in ("Usage", "Purchase") and row["ChargeClass"] != "Correction"
    list_unit = _decimal(row, "ListUnitPrice", problems, nullable=not usage)
    contracted_unit = _decimal(row, "ContractedUnitPrice", problems, nullable=not usage)
    if row["ChargeCategory"] == "Usage":
        _decimal(row, "ConsumedQuantity", problems)
        if row["ConsumedUnit"] == "":
            problems.append("ConsumedUnit is null on a Usage row")
    if None not in (list_unit, quantity, list_cost) and not _product(
        list_unit, quantity, list_cost
    ):
        problems.append("ListCost != ListUnitPrice x PricingQuantity")
    if None not in (contracted_unit, quantity, contracted) and not _product(
        contracted_unit, quantity, contracted
    ):
        problems.append("ContractedCost != ContractedUnitPrice x PricingQuantity")
    for value, column in ((list_unit, "ListUnitPrice"), (contracted_unit, "ContractedUnitPrice")):
        if value is not None and value < 0:
            problems.append(f"{column} is negative")
    # No commitments or amortisation here: a usage row's effective cost is what is billed.
    if None not in (billed, effective) and row["ChargeCategory"] == "Usage" and effective != billed:
        problems.append("EffectiveCost != BilledCost")
    if row["Tags"]:
        tags = json.loads(row["Tags"])
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            problems.append("Tags is not a JSON object of strings")
    return problems
