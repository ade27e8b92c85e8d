"""Tiny helpers shared across the package."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def exists(value: object) -> bool:
    return value is not None


def default(value: T | None, fallback: T) -> T:
    return value if value is not None else fallback
