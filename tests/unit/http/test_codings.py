"""Transfer codings (RFC 9112 §6): kept before chunked, undone for HTTP/1.0 clients."""

from __future__ import annotations

import gzip
import zlib

import pytest

from fulcrum.proxy.http import codings


def test_split_keeps_codings_before_a_final_chunked() -> None:
    assert codings.split(b"gzip, chunked") == ([b"gzip"], True)
    assert codings.split(b"GZIP,deflate , chunked") == ([b"gzip", b"deflate"], True)
    assert codings.split(b"gzip") == ([b"gzip"], False)
    assert codings.split(b"identity, chunked") == ([], True)


def test_decoder_undoes_codings_in_reverse_order_streaming() -> None:
    data = b"payload " * 5000
    coded = gzip.compress(zlib.compress(data))  # deflate applied first, then gzip
    decoder = codings.decoder_for([b"deflate", b"gzip"])
    assert decoder is not None
    out = b"".join(decoder.feed(coded[i:i + 100]) for i in range(0, len(coded), 100)) + decoder.flush()
    assert out == data


def test_unknown_coding_has_no_decoder_and_corrupt_data_is_an_error() -> None:
    assert codings.decoder_for([b"compress"]) is None
    decoder = codings.decoder_for([b"gzip"])
    assert decoder is not None
    with pytest.raises(ValueError):
        decoder.feed(b"not gzip at all")


def test_a_gzip_bomb_is_refused_per_read() -> None:
    bomb = gzip.compress(b"\0" * (codings.MAX_INFLATE_PER_READ + 1024))
    decoder = codings.decoder_for([b"gzip"])
    assert decoder is not None
    with pytest.raises(ValueError):
        decoder.feed(bomb)
