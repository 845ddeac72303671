"""NextToken pagination over a stably sorted list.

Tokens carry the sort key of the last item returned, so items added between two pages (a new
command, a new instance) never shift or repeat the rest of a listing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ssm_emulator.exceptions import InvalidNextToken, constraint_error

T = TypeVar("T")
Key = tuple[Any, ...]


def check_max_results(value: Any, low: int, high: int, default: int) -> int:
    """Return MaxResults, or raise ValidationException when it is outside `low..high`."""
    if value is None:
        return default
    number = int(value)
    if number < low:
        raise constraint_error(number, "maxResults", f"have value greater than or equal to {low}")
    if number > high:
        raise constraint_error(number, "maxResults", f"have value less than or equal to {high}")
    return number


def paginate(
    items: Sequence[T], key: Callable[[T], Key], max_results: int, next_token: str | None
) -> tuple[list[T], str | None]:
    """Return one page of `items` (sorted by `key`) and the token of the next page, if any."""
    ordered = sorted(items, key=key)
    if next_token:
        after = _decode(next_token)
        ordered = [item for item in ordered if list(key(item)) > after]
    page = ordered[:max_results]
    token = _encode(key(page[-1])) if len(ordered) > max_results else None
    return page, token


def _encode(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode(token: str) -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidNextToken("The specified token isn't valid.") from error
    if not isinstance(value, list):
        raise InvalidNextToken("The specified token isn't valid.")
    return value
