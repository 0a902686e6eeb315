"""A browser is one owner across reloads: the XSRF cookie's token is unmasked (Tornado masks it afresh at
every page load), so the queue's per-browser limit and the kept runs see the same browser each time."""

from __future__ import annotations

import os

from pages.server import xsrf_token


def masked_cookie(token: bytes, mask: bytes) -> str:
    """What Tornado writes: "2|<mask hex>|<token xor mask, hex>|<timestamp>"."""
    masked = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(token))
    return f"2|{mask.hex()}|{masked.hex()}|1764750000"


def test_two_maskings_of_one_token_are_one_owner_and_two_tokens_are_two():
    token, other = os.urandom(16), os.urandom(16)
    first, reload = masked_cookie(token, os.urandom(4)), masked_cookie(token, os.urandom(4))
    assert first != reload
    assert xsrf_token(first) == xsrf_token(reload) == token.hex()
    assert xsrf_token(masked_cookie(other, os.urandom(4))) != token.hex()


def test_a_cookie_of_another_form_is_taken_as_it_is():
    for value in ("plain-token", "2|zz|11|0", "1|ab|cd|0", "2||abcd|0"):
        assert xsrf_token(value) == value
    assert xsrf_token('"' + masked_cookie(b"\x01\x02", b"\xff") + '"') == "0102"  # quoted by the browser
