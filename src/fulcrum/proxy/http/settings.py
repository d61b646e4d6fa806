"""What the request path reads of a service's `http` section, copied out of the model once
per (re)load. Pure.

Every read of a pydantic model's field goes through its `__getattr__` hook (two type
lookups and a call); the core reads a dozen settings per request. A plain slotted object
costs one lookup each, and in the optional mypyc build (`make compiled`) a struct read."""

from __future__ import annotations

from fulcrum.config.model import Http


class HttpSettings:
    __slots__ = ("header_timeout", "body_timeout", "keepalive_timeout", "response_timeout",
                 "max_request_line", "max_header_bytes", "max_headers", "retry_after",
                 "redirect_https", "rewrite_location")

    def __init__(self, http: Http):
        self.header_timeout: float = http.header_timeout
        self.body_timeout: float = http.body_timeout
        self.keepalive_timeout: float = http.keepalive_timeout
        self.response_timeout: float = http.response_timeout
        self.max_request_line: int = http.max_request_line
        self.max_header_bytes: int = http.max_header_bytes
        self.max_headers: int = http.max_headers
        self.retry_after: int = http.retry_after
        self.redirect_https: bool = http.redirect_https
        self.rewrite_location: bool = http.rewrite_location
