"""Events: what happened, declared once by the app that publishes it, with its payload's fields.

    # rides/events.py
    class RideCompleted(Event, name="ride.completed"):
        \"\"\"A ride was completed: its final fare is set.\"\"\"

        ride_id: Id

    # the publisher, inside its transaction: a payload that does not fit raises here
    publish(RideCompleted(ride_id=ride.pk))

    # each subscriber names the declared event, so a typo fails at import; its payload is the
    # event's unless it declares one of its own (built on `RideCompleted.schema`)
    @job("payments.capture_payment", on=RideCompleted)

An event is a frozen dataclass of JSON fields: `int`, `Id` (an int of at least 1), `str`,
`bool`, `float`, each optional as `T | None = None`; a field with a default (`reason: str = ""`)
may be left out of a subscriber's payload. `manage.py jobs events` lists the events
and their subscribers; the system checks report events nobody subscribes to (jobs.W001) and
subscriptions to events nobody declares (jobs.E007).
"""

import dataclasses
import re
import types
import typing
from typing import Annotated, ClassVar, dataclass_transform

from rest_framework import serializers

from bimride.jobs.engine.errors import JobPayloadError

Id = Annotated[int, "id"]  # a row's id: an int of at least 1

NAME = re.compile(r"[a-z][a-z_]*\.[a-z][a-z_]*")  # "ride.completed"

_FIELDS = {  # a payload field's type: what its value must be, and its field in the schema
    int: (int, serializers.IntegerField, {}),
    Id: (int, serializers.IntegerField, {"min_value": 1}),
    str: (str, serializers.CharField, {"allow_blank": True, "trim_whitespace": False}),
    bool: (bool, serializers.BooleanField, {}),
    float: ((int, float), serializers.FloatField, {}),
}

_declared: dict[str, type["Event"]] = {}


@dataclass_transform(kw_only_default=True, frozen_default=True)
class Event:
    """The base of declared events: subclass it with `name="app.past_tense"` and typed fields."""

    name: ClassVar[str]
    schema: ClassVar[type[serializers.Serializer]]  # the payload's, for subscribers' jobs
    kinds: ClassVar[dict[str, tuple[object, bool]]]  # each field's type, and whether optional

    def __init_subclass__(cls, *, name: str, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not NAME.fullmatch(name):
            raise ValueError(
                f"{cls.__qualname__}: event names are 'app.what_happened', not {name!r}"
            )
        if name in _declared and _declared[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"Event {name} is declared twice ({_declared[name].__qualname__})")
        cls.name = name
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        cls.kinds = _kinds(cls)
        cls.schema = type(
            f"{cls.__name__}Payload",
            (serializers.Serializer,),
            {
                field.name: _schema_field(*cls.kinds[field.name], field)
                for field in dataclasses.fields(cls)
            },
        )
        _declared[name] = cls

    def __post_init__(self) -> None:
        errors = {}
        for field, (kind, optional) in self.kinds.items():
            value = getattr(self, field)
            if value is None and optional:
                continue
            wanted = _FIELDS[kind][0]
            a_bool_for_a_number = isinstance(value, bool) and wanted is not bool
            if a_bool_for_a_number or not isinstance(value, wanted):
                errors[field] = [f"Must be {_describe(kind)}, not {type(value).__name__}."]
            elif kind is Id and value < 1:
                errors[field] = ["Must be at least 1."]
        if errors:
            raise JobPayloadError(self.name, errors)

    def payload(self) -> dict:
        return dataclasses.asdict(self)


def _kinds(cls: type) -> dict[str, tuple[object, bool]]:
    """Each field's type and whether it may be None, refusing a type a payload cannot carry."""
    hints = typing.get_type_hints(cls, include_extras=True)
    kinds = {}
    for field in dataclasses.fields(cls):
        kind, optional = hints[field.name], False
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and None in _args(kind):
            rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            kind, optional = (rest[0] if len(rest) == 1 else kind), True
        if kind not in _FIELDS:
            raise TypeError(
                f"{cls.__qualname__}.{field.name}: an event's fields are int, Id, str, bool or "
                f"float (or T | None), not {kind}"
            )
        kinds[field.name] = (kind, optional)
    return kinds


def _args(kind: object) -> list:
    return [None if arg is type(None) else arg for arg in typing.get_args(kind)]


def _schema_field(kind: object, optional: bool, declared: dataclasses.Field) -> serializers.Field:
    _, field, options = _FIELDS[kind]
    if optional:
        options = {**options, "allow_null": True, "required": False}
    if declared.default is not dataclasses.MISSING:  # a field with a default may be left out
        options = {**options, "required": False, "default": declared.default}
    return field(**options)


def _describe(kind: object) -> str:
    return "an id (an int of at least 1)" if kind is Id else f"a {getattr(kind, '__name__', kind)}"


def declared() -> dict[str, type[Event]]:
    """Every declared event by name."""
    return dict(_declared)


def events_of(on: object) -> tuple[type[Event], ...]:
    """The events of a job's `on=`: declared events only, so that a typo fails at import."""
    events = on if isinstance(on, tuple | list) else (on,) if on else ()
    for event in events:
        if not (isinstance(event, type) and issubclass(event, Event)):
            raise TypeError(
                f"on= takes declared events (such as rides.events.RideCompleted), not {event!r}"
            )
    return tuple(events)
