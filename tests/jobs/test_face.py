"""The job system's face: what the apps import from `bimride.jobs`."""

import pytest

import bimride.jobs
from bimride.jobs.engine import ratelimit, registry


def test_every_name_the_face_offers_resolves_to_the_engines_or_the_operations_object():
    for name in bimride.jobs.__all__:
        assert getattr(bimride.jobs, name) is not None, name
    assert bimride.jobs.job is registry.job and bimride.jobs.ratelimit is ratelimit


def test_a_name_the_face_does_not_offer_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'runner'"):
        bimride.jobs.runner  # noqa: B018
