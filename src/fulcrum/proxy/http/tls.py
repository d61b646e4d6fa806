"""TLS offload for http services: server contexts (TLS 1.2 and 1.3 only), a certificate per SNI
name, reloaded from the files on every reload (certificate renewal with SIGHUP).

The listener accepts plain TCP and each connection's protocol does the TLS itself over memory
BIOs (tlsside.py), not the event loop's TLS transport: so a client's close_notify is a
half-close (pipelined requests sent before it are answered) and a refused handshake sends its
alert (protocol_version to TLS 1.1). Issue 7 item 14."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from fulcrum.config.model import Certificate, Tls
from fulcrum.proxy.http.tlsside import TlsServerSide

log = logging.getLogger("fulcrum.tls")

# Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3 suites are all modern and set apart).
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TlsError(Exception):
    """A certificate or key cannot be loaded: one clear line for the operator."""


def certificate_names(cert: Certificate) -> list[str]:
    """The SNI names a certificate answers for: configured, or its subjectAltName DNS entries
    (or its commonName when it has none)."""
    if cert.names:
        return [n.lower() for n in cert.names]
    # The stdlib's decoder of a PEM file; it avoids a dependency on `cryptography` for one read.
    decoded = ssl._ssl._test_decode_cert(cert.cert)  # type: ignore[attr-defined]
    names = [value.lower() for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"]
    if not names:
        for rdn in decoded.get("subject", ()):
            names += [value.lower() for key, value in rdn if key == "commonName"]
    return names


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _configure(context: ssl.SSLContext, cert: Certificate, ciphers: str | None) -> None:
    """Ciphers, options, ALPN and one certificate: the same for the listener's context and
    each per-name context the SNI callback chooses."""
    context.set_ciphers(ciphers or MODERN_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert.cert, cert.key)
    except (OSError, ssl.SSLError) as err:
        raise TlsError(f"cannot load certificate {cert.cert} with key {cert.key}: {err}") from err


def _context(cert: Certificate, ciphers: str | None) -> ssl.SSLContext:
    context = _server_context()
    _configure(context, cert, ciphers)
    return context


def _matches(pattern: str, name: str) -> bool:
    """RFC 6125 §6.4.3: a wildcard stands for exactly one left-most label."""
    if pattern.startswith("*."):
        head, dot, rest = name.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:]
    return pattern == name


class ServerTls:
    """The TLS side of one service's listeners. The SSLContext given to the listening server
    stays the same object for the life of the listener; a reload loads the new files into it
    and swaps the per-name contexts its SNI callback chooses from."""

    def __init__(self, tls: Tls):
        self.context = _server_context()
        self.context.sni_callback = self._choose
        self.by_name: list[tuple[list[str], ssl.SSLContext]] = []
        self.load(tls)

    def load(self, tls: Tls) -> None:
        """Read every certificate; on any error nothing changes (the reload fails whole)."""
        contexts = [(certificate_names(c), _context(c, tls.ciphers)) for c in tls.certificates]
        _configure(self.context, tls.certificates[0], tls.ciphers)  # no SNI match: the first certificate
        self.by_name = contexts

    def _choose(self, sslobj: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name:
            name = server_name.lower()
            for names, context in self.by_name:
                if any(_matches(p, name) for p in names):
                    sslobj.context = context
                    return
        # no or unknown name: the listener context (the first certificate) answers


_LIVE: dict[str, ServerTls] = {}  # service name + listen addresses -> TLS state, kept across reloads


class TlsProtocolFactory:
    """A protocol factory whose protocols speak TLS in front of the HTTP protocol."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], server_tls: ServerTls, handshake_timeout: float):
        self.factory = factory
        self.context = server_tls.context
        self.handshake_timeout = handshake_timeout

    def __call__(self) -> asyncio.Protocol:
        return TlsServerSide(self.factory(), self.context, self.handshake_timeout)


def tls_factory(service: str, protocol_factory: Callable[[], asyncio.Protocol], tls: Tls,
                handshake_timeout: float) -> TlsProtocolFactory:
    """Certificates are read now, so a missing or bad file fails the (re)load, not a client."""
    live = _LIVE.get(service)
    if live is None:
        live = _LIVE[service] = ServerTls(tls)
    else:
        try:
            live.load(tls)
        except (TlsError, ssl.SSLError, OSError) as err:
            # reload.py loaded these files a moment ago, before anything was swapped; one
            # replaced since must not leave the reload half done: the old certificates stay
            log.error("service %s: certificates changed during the reload (%s); the previous ones stay",
                      service.split(" ")[0], err)
    return TlsProtocolFactory(protocol_factory, live, handshake_timeout)
