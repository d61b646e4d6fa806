"""Config sync, the asyncio edge: a change applied on one node reaches its peers.

Why this shape:
- The hook is the node's apply, not the file or the command: every successful
  `Node.reload` (SIGHUP, a control command, later the web UI) and the node's start
  call `sync_applied(node, node.sync)`, so no front end can forget to sync, and a change that
  failed to apply is never sent.
- A node sends its new version to every peer at once (offer) and, every `interval`,
  exchanges latest versions with each peer (hello). The hello is what makes a node
  that was down, or missed an offer, catch up: the reply carries the newer document.
- Each connection carries one request line and one reply line, JSON, signed with
  HMAC-SHA256 (sync_state.py), optionally inside mutual TLS (config/sync.py); every
  connect, handshake and read is bounded by `timeout`.
- A peer's document is merged with this node's local settings (config/split.py),
  validated, applied with `node.reload`, then written to this node's configuration
  file (atomically, so a restart keeps it) and to the version store. Apply before
  write: a change that cannot run here (say, a port in use) is rejected and written
  nowhere; a crash between apply and write only means the version is pulled again.
- With sync on, the configuration file is the node's lasting copy of the cluster's
  configuration: a change made by a control command is written to it too. Otherwise
  a node restarted after `fulcrum ctl server.disable` would start from the older file,
  see a change, and undo the command on every node.
- With several worker processes the file is written first and the supervisor is sent
  SIGHUP, which makes every worker read the file (each reload then finds nothing new
  to publish).

Conflicts: two nodes changing at once each make version N; the higher node id wins
everywhere (sync_state.py). The TOML file is rewritten from the model, so comments in
it do not survive a synced change; the earlier versions stay in the store."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fulcrum.cluster.sync_state import (
    NONCE_BYTES,
    Adopt,
    Apply,
    Document,
    Freshness,
    Ignore,
    Offer,
    Publish,
    SyncState,
    canonical,
    signed,
    verified,
)
from fulcrum.cluster.sync_store import SyncStore
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_file
from fulcrum.config.model import Config
from fulcrum.config.split import merge, shared_part
from fulcrum.config.sync import SyncSettings
from fulcrum.config.types import split_host_port
from fulcrum.files import atomic_write
from fulcrum.nodelike import edit_lock

if TYPE_CHECKING:
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.sync")

MAX_MESSAGE = 16 * 1024 * 1024  # one configuration document, with room to spare


class ConfigSync:
    def __init__(self, node: NodeLike, settings: SyncSettings):
        self.node = node
        self.settings = settings
        self.secret = settings.read_secret()
        self.node_id = settings.node_id()
        self.store = SyncStore(settings.state_dir, self.secret, settings.keep)
        self.tls_server, self.tls_client = tls_contexts(settings)
        self.state = SyncState(self.node_id, self.store.latest())
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._receiving = asyncio.Lock()
        self._unreachable: set[str] = set()
        self._rejected: set[tuple[int, str]] = set()
        self.freshness = Freshness(settings.max_clock_skew, time.time())
        self._stale_from: set[str] = set()  # peers whose stale messages were logged

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.applied(self.node.config)  # edited while we were down, or a first start
        host, port = split_host_port(self.settings.listen)
        self.server = await asyncio.start_server(
            self._serve, host, port, limit=MAX_MESSAGE, reuse_address=True, ssl=self.tls_server,
            ssl_handshake_timeout=self.settings.timeout if self.tls_server else None)
        self._spawn(self._hello_loop())
        log.info("sync: node %s at version %d, listening on %s, peers %s", self.node_id,
                 self.state.key[0], self.settings.listen, ", ".join(self.settings.peers))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not asyncio.current_task()),
                             return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- local changes ------------------------------------------------------------------

    def applied(self, config: Config) -> None:
        """The node runs `config` now: version its shared part if it changed, send it."""
        decision = self.state.local_change(shared_part(config), time.time())
        if not isinstance(decision, Publish):
            return
        document = decision.document
        # File first, then store: a crash between leaves a file that matches no stored
        # version, which the next start publishes again (never a stale file that would
        # be published as a change and undo this one everywhere).
        self._persist(config, f"version {document.version}, a change made on this node")
        self._save(document)
        log.info("sync: local change is version %d; sending it to %d peer(s)",
                 document.version, len(self.settings.peers))
        for peer in self.settings.peers:
            self._spawn(self._offer(peer, document))

    def _persist(self, config: Config, why: str) -> None:
        """Peers keep a synced change in their files; so does the node it was made on
        (a control command changes only the running configuration otherwise). A file
        that already says the same (a SIGHUP reload) is left as it is, comments and all."""
        path = getattr(self.node, "config_path", None)
        if not path:
            return
        try:
            if load_file(path) == config:
                return
        except ConfigError:
            pass
        try:
            write_config_file(path, config, why)
        except OSError as err:
            log.error("sync: %s not rewritten (a restart would start from it): %s", path, err)

    def _save(self, document: Document) -> None:
        try:
            self.store.save(document)
        except OSError as err:  # the change runs and is sent; only rollback to it is lost
            log.error("sync: version %d not stored in %s: %s", document.version, self.store.path, err)

    async def _offer(self, peer: str, document: Document) -> None:
        reply = await self._request(peer, {"type": "offer", "document": document.to_json(self.secret)})
        if reply is not None:
            level = logging.WARNING if reply.get("status") == "rejected" else logging.INFO
            log.log(level, "sync: %s %s version %d: %s", peer, reply.get("status"),
                    document.version, reply.get("reason", ""))

    # -- catching up -------------------------------------------------------------------

    async def _hello_loop(self) -> None:
        while True:
            results = await asyncio.gather(*(self.hello(peer) for peer in self.settings.peers),
                                           return_exceptions=True)
            for peer, result in zip(self.settings.peers, results, strict=True):
                if isinstance(result, Exception):  # a bug must not end catching up
                    log.error("sync: exchange with %s failed", peer, exc_info=result)
            await asyncio.sleep(self.settings.interval)

    async def hello(self, peer: str) -> None:
        """Compare latest versions with `peer`; pull theirs or push ours if one is behind."""
        version, node = self.state.key
        reply = await self._request(peer, {"type": "hello", "version": version, "vnode": node})
        if reply is None:
            return
        if reply.get("document") is not None:
            try:
                document = Document.from_json(reply["document"], self.secret)
            except ValueError as err:
                log.warning("sync: %s sent a bad document: %s", peer, err)
                return
            await self.receive(document, peer)
            return
        peer_key = _key(reply)
        if peer_key is None:
            log.warning("sync: %s sent a malformed hello reply", peer)
            return
        decision = self.state.hello(peer_key)
        if isinstance(decision, Offer):
            await self._offer(peer, decision.document)

    # -- a peer's document ---------------------------------------------------------------

    async def receive(self, document: Document, source: str) -> tuple[str, str]:
        """Apply a verified document from a peer if it is newer: (status, reason)."""
        async with self._receiving:
            decision = self.state.offered(document)
            if isinstance(decision, Ignore):
                return "ignored", decision.reason
            if isinstance(decision, Adopt):
                self.state.applied(document)
                self._save(document)
                return "accepted", "content already running"
            assert isinstance(decision, Apply)
            # The control commands' lock: a command editing a snapshot taken before this
            # apply would otherwise undo it with its own reload.
            async with edit_lock(self.node):
                try:
                    config = merge(document.config, self.node.config)
                except ConfigError as err:
                    reason = str(err).replace("\n", "; ")
                    self._log_rejected(document, f"rejected (via {source}): {reason}")
                    return "rejected", reason
                previous = self.state.latest
                self.state.applied(document)  # so the reload hook sees nothing new to publish
                try:
                    await self._install(config, document)
                except Exception as err:  # noqa: BLE001 - keep running the previous version
                    self.state.restore(previous)
                    self._log_rejected(document, f"could not be applied: {err}")
                    return "rejected", f"apply failed: {err}"
            self._save(document)
            log.info("sync: applied version %d from %s (via %s)", document.version, document.node, source)
            return "accepted", "applied"

    def _log_rejected(self, document: Document, why: str) -> None:
        # The peer offers it again at every exchange until this node can take it
        # (its own change, or a fix on the peer): say so once, not every interval.
        level = logging.DEBUG if document.key in self._rejected else logging.ERROR
        self._rejected.add(document.key)
        log.log(level, "sync: version %d from %s %s", document.version, document.node, why)

    async def _install(self, config: Config, document: Document) -> None:
        path = getattr(self.node, "config_path", None)
        if config.workers > 1 and path:
            write_config_file(path, config, f"version {document.version} from node {document.node}")
            os.kill(os.getppid(), signal.SIGHUP)  # the supervisor makes every worker re-read it
            return
        await self.node.reload(config)
        if path:
            try:
                write_config_file(path, config, f"version {document.version} from node {document.node}")
            except OSError as err:  # it runs: not a rejection, but a restart would lose it
                log.error("sync: version %d runs, but %s was not rewritten: %s",
                          document.version, path, err)
        else:
            log.warning("sync: version %d runs, but there is no configuration file to keep it "
                        "across a restart", document.version)

    # -- the wire ---------------------------------------------------------------------

    async def _request(self, peer: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Send one signed request line and read one signed reply line; None on failure."""
        host, port = split_host_port(peer)
        nonce = secrets.token_hex(NONCE_BYTES)
        message = signed({**body, "node": self.node_id, "time": time.time(), "nonce": nonce}, self.secret)
        try:
            async with asyncio.timeout(self.settings.timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, limit=MAX_MESSAGE, ssl=self.tls_client,
                    ssl_handshake_timeout=self.settings.timeout if self.tls_client else None)
                try:
                    writer.write(canonical(message) + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError, ValueError) as err:
            if peer not in self._unreachable:
                log.warning("sync: peer %s unreachable: %s", peer, err or type(err).__name__)
                self._unreachable.add(peer)
            return None
        if peer in self._unreachable:
            log.info("sync: peer %s reachable again", peer)
            self._unreachable.discard(peer)
        reply = _verified_line(line, self.secret)
        if reply is None:
            log.warning("sync: reply from %s is not signed with our secret; ignored", peer)
            return None
        if reply.get("re") != nonce or not isinstance(reply.get("time"), int | float) \
                or abs(time.time() - reply["time"]) > self.settings.max_clock_skew:
            # a reply to another request, or an old one: a replay, or clocks out of step
            log.warning("sync: reply from %s is not an answer to this request (%s); ignored", peer,
                        reply.get("reason") or "wrong nonce or time")
            return None
        return reply

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = _address(writer)
        try:
            async with asyncio.timeout(self.settings.timeout):
                line = await reader.readline()
            request = _verified_line(line, self.secret)
            if request is None:
                log.warning("sync: request from %s is not signed with our secret; dropped", source)
                return
            stale = self.freshness.refuse(request, time.time())
            if stale is not None:
                self._log_stale(source, stale)
                reply: dict[str, Any] = {"type": "error", "reason": f"stale message: {stale}"}
            else:
                reply = await self._answer(request, source)
            writer.write(canonical(signed({**reply, "node": self.node_id, "time": time.time(),
                                           "re": request.get("nonce")}, self.secret)) + b"\n")
            async with asyncio.timeout(self.settings.timeout):
                await writer.drain()
        except (OSError, TimeoutError, ValueError) as err:
            log.info("sync: request from %s failed: %s", source, err or type(err).__name__)
        finally:
            writer.close()

    def _log_stale(self, source: str, reason: str) -> None:
        host = source.rsplit(":", 1)[0]
        level = logging.DEBUG if host in self._stale_from else logging.WARNING
        self._stale_from.add(host)
        log.log(level, "sync: request from %s refused: %s", source, reason)

    async def _answer(self, request: dict[str, Any], source: str) -> dict[str, Any]:
        kind = request.get("type")
        peer = f"{request.get('node')} at {source}"
        if request.get("node") == self.node_id:
            log.error("sync: %s uses this node's id %r; give each node its own sync.node",
                      source, self.node_id)
            return {"type": "error", "reason": "same node id"}
        if kind == "hello":
            version, node = self.state.key
            peer_key = _key(request)
            if peer_key is None:
                return {"type": "error", "reason": "malformed hello"}
            self.state.seen(peer_key[0])
            ahead = self.state.latest is not None and peer_key < self.state.key
            return {"type": "hello", "version": version, "vnode": node,
                    "document": self.state.latest.to_json(self.secret) if ahead and self.state.latest else None}
        if kind == "offer":
            try:
                document = Document.from_json(request.get("document"), self.secret)
            except ValueError as err:
                return {"type": "result", "status": "rejected", "reason": str(err)}
            status, reason = await self.receive(document, peer)
            return {"type": "result", "status": status, "reason": reason}
        return {"type": "error", "reason": f"unknown request type {kind!r}"}


def tls_contexts(settings: SyncSettings) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """Mutual TLS: each side shows a certificate signed by the cluster's CA. Names are
    not checked: peers are configured by address, and the private CA signs only nodes."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None, None
    contexts = []
    for purpose in (ssl.Purpose.CLIENT_AUTH, ssl.Purpose.SERVER_AUTH):
        context = ssl.create_default_context(purpose, cafile=settings.tls_ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        contexts.append(context)
    return contexts[0], contexts[1]


def _verified_line(line: bytes, secret: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return verified(message, secret)


def _key(message: dict[str, Any]) -> tuple[int, str] | None:
    version, node = message.get("version"), message.get("vnode")
    if isinstance(version, int) and not isinstance(version, bool) and isinstance(node, str):
        return (version, node)
    return None


def _address(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    return f"{peername[0]}:{peername[1]}" if peername else "?"


def write_config_file(path: str, config: Config, why: str) -> None:
    """Rewrite the node's TOML file atomically, keeping its permissions."""
    import tomli_w

    target = Path(path)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    header = f"# Written by fulcrum config sync: {why}.\n# Earlier versions: `fulcrum sync versions`.\n\n"
    body = tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))
    atomic_write(target, (header + body).encode(), mode)


# -- the node's hooks ----------------------------------------------------------------

async def sync_applied(node: NodeLike, current: ConfigSync | None) -> ConfigSync | None:
    """After the node started or applied a reload: start, restart or stop config sync
    to match `node.config.sync`, and publish the change if its shared part is new.
    `current` is the node's running ConfigSync; the one to keep is returned (the node
    holds it: this module never sets the node's parts)."""
    settings = node.config.sync
    if current is not None and (settings is None or settings != current.settings):
        await current.stop()
        current = None
    if settings is None or not getattr(node, "owns_machine", True):
        return current
    if current is None:
        try:
            syncer = ConfigSync(node, settings)
        except (OSError, ValueError) as err:
            log.error("sync: not started: %s", err)
            return None
        try:
            await syncer.start()
        except OSError as err:
            # Serving matters more than syncing: the node runs, unsynced, and says why.
            log.error("sync: not started: %s", err)
            await syncer.stop()
            return None
        return syncer
    current.applied(node.config)
    return current
