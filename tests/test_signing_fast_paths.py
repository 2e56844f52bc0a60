"""The signed request's fast paths make exactly what the general ones make: the HMAC
signers on OpenSSL's own object, and encode_query's one test of all values at once."""

from __future__ import annotations

import copy
import hashlib
import hmac
import pickle
import secrets
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetrade.errors import InvalidRequest
from securetrade.keys import Secret
from securetrade.signing.encoding import encode_query
from securetrade.signing.signers import HmacSha256Base64Signer, HmacSha256Signer

_KEY = secrets.token_hex(16)  # per run: no literal that looks like a key


@given(st.binary(max_size=600))
def test_hmac_signers_sign_as_the_standard_library_does(payload: bytes) -> None:
    hexed = HmacSha256Signer(Secret(_KEY)).sign(payload)
    assert hexed == hmac.new(_KEY.encode(), payload, hashlib.sha256).hexdigest()
    signer = HmacSha256Base64Signer(Secret(_KEY))
    assert signer.sign(payload) == signer.sign(payload)  # the keyed state is not consumed


@pytest.mark.parametrize("kind", [HmacSha256Signer, HmacSha256Base64Signer])
def test_hmac_signers_keep_their_key_to_themselves(kind: type[HmacSha256Signer]) -> None:
    signer = kind(Secret(_KEY))
    assert _KEY not in repr(signer)
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(TypeError):
        copy.copy(signer)


def _reference(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='-._~')}={quote(v, safe='-._~')}" for k, v in pairs)


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@given(st.lists(st.tuples(st.sampled_from(["symbol", "price", "a b", "x&y"]), _text), max_size=8))
def test_encode_query_matches_percent_encoding(pairs: list[tuple[str, str]]) -> None:
    assert encode_query(pairs) == _reference(pairs)
    assert encode_query(iter(pairs)) == _reference(pairs)


@pytest.mark.parametrize(
    "pairs",
    [
        [("symbol", "BTCUSDT"), ("price", "70000.00"), ("newClientOrderId", "st_3a-06~")],
        [("symbol", "BTC USDT")],
        [("a", "x&y=z"), ("b", "é")],
        [("a", "Zm9v+/=")],
    ],
)
def test_encode_query_plain_and_escaped_values(pairs: list[tuple[str, str]]) -> None:
    assert encode_query(pairs) == _reference(pairs)


@pytest.mark.parametrize("pairs", [[("a", 5)], [("a", "\ud800")], [("a",)], [("a", None)]])
def test_encode_query_refuses_what_is_no_text_pair(pairs: list[tuple[object, ...]]) -> None:
    with pytest.raises(InvalidRequest):
        encode_query(pairs)  # type: ignore[arg-type]
