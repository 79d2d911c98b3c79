"""Stable error codes: each wire-visible class names its own, and the client maps each back to it."""

from __future__ import annotations

import pytest

from lwr import errors
from lwr.client.errors import BY_CODE, RemoteError, TransportError, error_class
from lwr.protocol.ranges import RangeNotSatisfiable

SERVER_CLASSES = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, errors.LwrError) and value is not errors.LwrError
]


@pytest.mark.parametrize("cls", [*SERVER_CLASSES, RangeNotSatisfiable], ids=lambda cls: cls.__name__)
def test_every_error_class_names_its_own_code_and_maps_back(cls: type[errors.LwrError]) -> None:
    assert "code" in vars(cls), f"{cls.__name__} inherits its code"
    assert error_class(cls.http_status, cls.code) is cls


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in [*SERVER_CLASSES, RangeNotSatisfiable]]
    assert len(codes) == len(set(codes)) == len(BY_CODE)


@pytest.mark.parametrize(
    "status, code, expected",
    [
        (400, None, errors.BadRequest),
        (400, "integrity", errors.IntegrityError),
        (400, 7, errors.BadRequest),  # a code that is not a string is ignored
        (500, None, TransportError),
        (502, "no_such_code", TransportError),
        (418, None, RemoteError),
    ],
)
def test_error_class_falls_back_on_the_status(status: int, code: object, expected: type) -> None:
    assert error_class(status, code) is expected
