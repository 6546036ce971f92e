"""Input fields that take JSON's types as the schema states them.

DRF's fields coerce: `"reason": 0` becomes "0", `"amount": "5"` becomes 5, `"available": "yes"`
becomes True. A client generated from /api/schema/ never sends those, and accepting them hides
its bugs, so every input serializer uses these instead: a value of another JSON type answers
400 `invalid`.
"""

from decimal import Decimal, InvalidOperation

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string, not `true`)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class NumberOrDecimalStringField(serializers.DecimalField):
    """A JSON number, rounded to the field's decimal places, or a decimal string with no more
    places than those (`4.333` or `"4.30"`); anything else is refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            self.fail("invalid")
        if not isinstance(data, str):
            try:
                data = Decimal(str(data)).quantize(Decimal(1).scaleb(-self.decimal_places))
            except InvalidOperation:
                self.fail("invalid")
        return super().to_internal_value(data)


def number_or_decimal_string(*, maximum: int, decimal_places: int) -> dict:
    """The schema of a NumberOrDecimalStringField from 0 to `maximum` (a power of ten times a
    digit, e.g. 5000, so that its string pattern is exact)."""
    lead, zeros = str(maximum)[0], len(str(maximum)) - 1
    below = rf"([0-{int(lead) - 1}]?\d{{1,{zeros}}}|{lead})" if lead != "1" else rf"\d{{1,{zeros}}}"
    places = rf"(\.\d{{1,{decimal_places}}})?"
    top = rf"{maximum}(\.0{{1,{decimal_places}}})?"
    return {
        "oneOf": [
            {"type": "number", "minimum": 0, "maximum": maximum},
            {"type": "string", "pattern": rf"^({below}{places}|{top})$"},
        ]
    }


__all__ = [
    "NumberOrDecimalStringField",
    "StrictBooleanField",
    "StrictCharField",
    "StrictEmailField",
    "StrictFloatField",
    "StrictIntegerField",
    "extend_schema_field",
    "number_or_decimal_string",
]
