"""A loopback HTTP/1.1 proxy that injects the faults real S3 endpoints have.

``FaultProxy(upstream_url, rate=0.2, seed=1)`` listens on 127.0.0.1 (a port the OS picks) and
forwards every request to ``upstream_url`` byte for byte: the request line, the headers as the
client sent them (the ``Host`` header included, since requests are SigV4-signed over it; only
``Expect: 100-continue`` is answered here and not passed on) and the body, whether framed by
``Content-Length`` or ``Transfer-Encoding: chunked`` (aws-chunked uploads included: the chunks,
their extensions and the trailers go through unchanged). The upstream's answer is relayed the same
way. With probability ``rate`` a request gets one fault instead:

- ``"500"``: an ``InternalError`` answer, the upstream never sees the request;
- ``"503"``: a ``SlowDown`` answer, the upstream never sees the request;
- ``"drop"``: the request is read, then the connection is closed without an answer;
- ``"truncate"``: for a GET whose answer has a ``Content-Length`` body, the request is forwarded,
  the status and headers (with the full length) are relayed, then half the body, then the
  connection is closed.

One request — method, path, query and ``Range`` — is faulted at most ``max_faults_per_request``
times, so a client that retries eventually gets through; ``kinds`` narrows the choice (a request
for which none of them applies is forwarded). ``faults`` counts the faults injected by
kind, ``requests`` the requests received, ``injected`` lists ``(kind, method, target)`` in order.
``bandwidth`` (bytes per second, per request and direction) slows bodies down and ``latency``
(seconds) delays each request, so that a test can act while transfers are under way.

Each client connection gets its own thread and, per request, a fresh connection to the upstream
(so a request never lands on an upstream connection the server has meanwhile closed).

A subclass can change what the upstream seems to do (tests/quirks.py does) through three methods
that FaultProxy itself leaves inert, called for the requests that get no fault: ``intercept``
answers a request itself (the upstream never sees it), ``edit_mode`` asks for the upstream's
answer to a request, and ``edit_response`` then returns the answer the client gets instead.
"""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import BinaryIO
from urllib.parse import urlsplit

KINDS = ("500", "503", "drop", "truncate")
_PIECE = 256 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEADERS = 200
_CLIENT_TIMEOUT = 300.0
_UPSTREAM_TIMEOUT = 120.0

_ERRORS = {
    "500": (
        b"500 Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    "503": (b"503 Slow Down", "SlowDown", "Please reduce your request rate."),
}


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 as this proxy understands it."""


class _Message:
    """The start line and headers of a request or response, as raw bytes and parsed."""

    def __init__(self, start: bytes, lines: list[bytes]) -> None:
        self.start = start
        self.lines = lines
        self.headers: list[tuple[str, str]] = []
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"bad header line {line!r}")
            self.headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))

    def get(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> set[str]:
        value = self.get(name) or ""
        return {token.strip().lower() for token in value.split(",") if token.strip()}

    @property
    def chunked(self) -> bool:
        return "chunked" in self.tokens("transfer-encoding")

    @property
    def content_length(self) -> int | None:
        value = self.get("content-length")
        if value is None:
            return None
        lengths = {part.strip() for part in value.split(",")}
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError(f"bad Content-Length {value!r}")
        return int(next(iter(lengths)))

    def raw(self, *, drop: Callable[[str, str], bool] = lambda name, value: False) -> bytes:
        kept = [line for line, (name, value) in zip(self.lines, self.headers, strict=True) if not drop(name, value)]
        return b"".join(line + b"\r\n" for line in [self.start, *kept]) + b"\r\n"


def _read_line(reader: BinaryIO) -> bytes:
    """One CRLF- (or LF-) terminated line, without its terminator; ``b""`` at end of stream."""
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ProtocolError("line too long")
    if line and not line.endswith(b"\n"):
        raise ProtocolError("connection closed in the middle of a line")
    return line.rstrip(b"\r\n")


def _read_message(reader: BinaryIO) -> _Message | None:
    """A start line and headers; ``None`` when the stream ends cleanly before a message."""
    start = _read_line(reader)
    while start == b"":  # tolerate empty lines between messages (RFC 9112 2.2)
        line = reader.readline(_MAX_LINE + 1)
        if not line:
            return None
        start = line.rstrip(b"\r\n")
    lines: list[bytes] = []
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ProtocolError("connection closed in the middle of the headers")
        line = line.rstrip(b"\r\n")
        if not line:
            return _Message(start, lines)
        if len(lines) >= _MAX_HEADERS:
            raise ProtocolError("too many headers")
        lines.append(line)


def _copy_exactly(reader: BinaryIO, count: int, write: Callable[[bytes], None]) -> None:
    while count > 0:
        piece = reader.read(min(count, _PIECE))
        if not piece:
            raise ProtocolError(f"connection closed with {count} body bytes missing")
        write(piece)
        count -= len(piece)


def _copy_chunked(reader: BinaryIO, write: Callable[[bytes], None]) -> None:
    """Relay a chunked body unchanged: size lines with their extensions, data, last chunk, trailers."""
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ProtocolError("connection closed in a chunk size line")
        write(line)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line!r}") from None
        if size == 0:
            while True:  # trailer fields, then the empty line
                trailer = reader.readline(_MAX_LINE + 1)
                if not trailer.endswith(b"\n"):
                    raise ProtocolError("connection closed in the trailers")
                write(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return
        _copy_exactly(reader, size, write)
        end = reader.readline(3)
        if end not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk data not followed by CRLF")
        write(end)


def _read_chunked(reader: BinaryIO) -> bytes:
    """A chunked body, its framing undone (chunk extensions and trailers dropped)."""
    data = bytearray()
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ProtocolError("connection closed in a chunk size line")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line!r}") from None
        if size == 0:
            while True:
                trailer = reader.readline(_MAX_LINE + 1)
                if not trailer.endswith(b"\n"):
                    raise ProtocolError("connection closed in the trailers")
                if trailer in (b"\r\n", b"\n"):
                    return bytes(data)
        _copy_exactly(reader, size, data.extend)
        if reader.readline(3) not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk data not followed by CRLF")


def with_body(response: _Message, body: bytes) -> bytes:
    """``response``'s status line and headers, framed by a ``Content-Length`` of ``body``, then
    ``body``; ``Content-Length`` and ``Transfer-Encoding`` are replaced, the other headers kept."""
    head = response.raw(drop=lambda name, value: name in ("content-length", "transfer-encoding"))
    return head[:-2] + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def _copy_request_body(request: _Message, reader: BinaryIO, write: Callable[[bytes], None]) -> None:
    if request.chunked:
        _copy_chunked(reader, write)
    else:
        _copy_exactly(reader, request.content_length or 0, write)


def _discard(_: bytes) -> None:
    pass


def _paced(write: Callable[[bytes], None], bandwidth: float | None) -> Callable[[bytes], None]:
    """``write``, slowed down to ``bandwidth`` bytes per second (unchanged if ``None``)."""
    if bandwidth is None:
        return write
    start, sent = time.monotonic(), 0

    def paced(data: bytes) -> None:
        nonlocal sent
        for offset in range(0, len(data), 16 * 1024):
            piece = data[offset : offset + 16 * 1024]
            write(piece)
            sent += len(piece)
            delay = start + sent / bandwidth - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    return paced


class FaultProxy:
    """A fault-injecting HTTP/1.1 proxy in front of one upstream, on 127.0.0.1; a context manager."""

    def __init__(
        self,
        upstream_url: str,
        *,
        rate: float,
        seed: int,
        max_faults_per_request: int = 2,
        kinds: Sequence[str] = KINDS,
        bandwidth: float | None = None,
        latency: float = 0.0,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"the upstream must be http://HOST:PORT, not {upstream_url!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        if not kinds or not set(kinds) <= set(KINDS):
            raise ValueError(f"kinds must be some of {KINDS}, not {kinds!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.rate = rate
        self.max_faults_per_request = max_faults_per_request
        self.kinds = tuple(kinds)
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError(f"bandwidth must be positive, not {bandwidth}")
        self.bandwidth = bandwidth
        self.latency = latency
        self.faults: Counter[str] = Counter()
        self.requests = 0
        #: Every request that reached the proxy, in order: its S3 operation (``operation_of``) and headers.
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.injected: list[tuple[str, str, str]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._per_request: Counter[tuple[str, str, str]] = Counter()
        self._sockets: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:  # wake the connection threads blocked on a read
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        for thread in server.handler_threads():
            thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # counters

    def operations(self, *names: str) -> list[str]:
        """The S3 operations of the requests that reached the proxy (only ``names``, if given)."""
        with self._lock:
            return [operation for operation, _ in self.sent if not names or operation in names]

    def headers_of(self, *names: str) -> list[dict[str, str]]:
        """The headers (lower-case names) of the requests of these operations, in order."""
        with self._lock:
            return [headers for operation, headers in self.sent if operation in names]

    def counts(self) -> dict[str, int]:
        """Faults injected so far, by kind (every kind present, zeros included)."""
        with self._lock:
            return {kind: self.faults[kind] for kind in KINDS}

    # extension points: FaultProxy forwards every request and relays every answer unchanged

    def intercept(self, request: _Message) -> bytes | None:
        """A whole HTTP answer (status line, headers, and a body unless the request is a HEAD) to
        give instead of forwarding ``request``, whose body is then read and dropped; ``None`` (as
        here) forwards it. Called for every request that gets no fault, before its body is read."""
        return None

    def edit_mode(self, request: _Message) -> str | None:
        """Whether the upstream's answer to ``request`` (forwarded, no fault) goes through
        ``edit_response``: ``"head"`` for its status line and headers alone (the body then follows
        unchanged, so it must keep its framing), ``"whole"`` for them and its body read in full
        (chunked framing undone), or as ``"head"`` when the answer has none (to a HEAD, a 204, a 304);
        ``None`` (as here) relays it unchanged."""
        return None

    def edit_response(self, request: _Message, response: _Message, body: bytes | None) -> bytes:
        """The answer the client gets instead of the upstream's: in ``"head"`` mode (``body`` is
        ``None``) the status line and headers; in ``"whole"`` mode the whole answer, framed by
        itself (:func:`with_body` does it). Unchanged here."""
        return response.raw() if body is None else with_body(response, body)

    def __repr__(self) -> str:
        return f"FaultProxy({self.upstream}, rate={self.rate}, requests={self.requests}, faults={self.counts()})"

    # decisions

    def _decide(self, request: _Message) -> tuple[str | None, tuple[str, str, str]]:
        """The fault for this request, if any; counted at once (a truncation is uncounted by
        ``_cancel`` when the answer turns out to have no body to cut)."""
        method, target = _method_target(request)
        key = (method, target, request.get("range") or "")
        with self._lock:
            self.requests += 1
            operation = operation_of(method, target, copy_source=request.get("x-amz-copy-source"))
            self.sent.append((operation, {name: request.get(name) or "" for name, _ in request.headers}))
            if self._per_request[key] >= self.max_faults_per_request or self._rng.random() >= self.rate:
                return None, key
            kinds = [kind for kind in self.kinds if method == "GET" or kind != "truncate"]
            if not kinds:
                return None, key
            kind = self._rng.choice(kinds)
            self._per_request[key] += 1
            self.faults[kind] += 1
            self.injected.append((kind, method, target))
            return kind, key

    def _cancel(self, kind: str, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._per_request[key] -= 1
            self.faults[kind] -= 1
            self.injected.remove((kind, key[0], key[1]))

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if not add:
                self._sockets.discard(sock)
                return
            if self._server is not None:
                self._sockets.add(sock)
                return
        try:  # stopping: a connection accepted just before ends at once
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def operation_of(method: str, target: str, *, copy_source: str | None = None) -> str:
    """The S3 operation of a path-style request (``GetObject``, ``CopyObject``, ...), whichever
    client sent it; ``method target`` for what it does not name."""
    path, _, query = target.partition("?")
    params = {part.split("=", 1)[0] for part in query.split("&") if part}
    has_key = "/" in path.strip("/")
    if method == "GET" and not has_key:
        return "ListObjectsV2" if "list-type" in params else "ListObjects" if not params else f"GET ?{query}"
    if "uploads" in params:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    if "uploadId" in params:
        if method == "PUT":
            return "UploadPartCopy" if copy_source else "UploadPart"
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(method, "ListParts")
    for name in ("tagging", "retention", "legal-hold", "object-lock", "delete"):
        if name in params:
            return f"{method} ?{name}"
    if has_key:
        if method == "PUT":
            return "CopyObject" if copy_source else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, f"{method} object")
    return f"{method} {path}"


def _method_target(request: _Message) -> tuple[str, str]:
    parts = request.start.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad request line {request.start!r}")
    return parts[0].decode("ascii"), parts[1].decode("latin-1")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[_Handler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._handler_threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self._threads_lock:
            self._handler_threads.append(threading.current_thread())
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._threads_lock:
                self._handler_threads.remove(threading.current_thread())

    def handler_threads(self) -> list[threading.Thread]:
        with self._threads_lock:
            return list(self._handler_threads)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # a client gone or a malformed message: the connection is closed, nothing to report


class _Handler(socketserver.BaseRequestHandler):
    """One client connection: requests in sequence (keep-alive) until either side closes."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        proxy = self.server.proxy
        client = self.request
        reader = client.makefile("rb", buffering=_PIECE)
        try:
            proxy._track(client, add=True)
            client.settimeout(_CLIENT_TIMEOUT)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while self._one_exchange(proxy, client, reader):
                pass
        except (OSError, ProtocolError):
            pass
        finally:
            proxy._track(client, add=False)
            reader.close()
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _one_exchange(self, proxy: FaultProxy, client: socket.socket, reader: BinaryIO) -> bool:
        """Relay (or fault) one request; whether the client connection stays open."""
        request = _read_message(reader)
        if request is None:
            return False
        method, _ = _method_target(request)
        if "100-continue" in request.tokens("expect"):
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        kind, key = proxy._decide(request)
        if proxy.latency:
            time.sleep(proxy.latency)
        if kind in ("500", "503", "drop"):
            _copy_request_body(request, reader, _discard)
            if kind == "drop":
                return False
            client.sendall(_error_response(kind, method, proxy.requests))
            return _keep_alive(request, None)
        mode = None
        if kind is None:
            answer = proxy.intercept(request)
            if answer is not None:
                _copy_request_body(request, reader, _discard)
                client.sendall(answer)
                return _keep_alive(request, None)
            mode = proxy.edit_mode(request)
        return self._forward(proxy, client, reader, request, method, kind, key, mode)

    def _forward(
        self,
        proxy: FaultProxy,
        client: socket.socket,
        reader: BinaryIO,
        request: _Message,
        method: str,
        kind: str | None,
        key: tuple[str, str, str],
        mode: str | None = None,
    ) -> bool:
        upstream = socket.create_connection(proxy.upstream, timeout=_UPSTREAM_TIMEOUT)
        up_reader = upstream.makefile("rb", buffering=_PIECE)
        try:
            proxy._track(upstream, add=True)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Expect is answered here; everything else goes as the client sent it (Host included).
            upstream.sendall(request.raw(drop=lambda name, value: name == "expect"))
            body_complete = True
            try:
                _copy_request_body(request, reader, _paced(upstream.sendall, proxy.bandwidth))
            except (BrokenPipeError, ConnectionResetError):
                body_complete = False  # the upstream answered early and closed: relay its answer, then close
            response = _read_message(up_reader)
            while response is not None and _status(response) // 100 == 1 and _status(response) != 101:
                response = _read_message(up_reader)  # interim answers (100 Continue): ours was sent already
            if response is None:
                return False  # the upstream closed without an answer: so does the proxy
            status = _status(response)
            no_body = method == "HEAD" or status in (204, 304)
            length = None if no_body or response.chunked else response.content_length
            send = _paced(client.sendall, proxy.bandwidth)
            if mode == "whole" and not no_body:  # read whole, edited, relayed framed by a Content-Length
                if response.chunked:
                    body = _read_chunked(up_reader)
                elif length is not None:
                    collected = bytearray()
                    _copy_exactly(up_reader, length, collected.extend)
                    body = bytes(collected)
                else:
                    body = up_reader.read()
                send(proxy.edit_response(request, response, body))
                framed = response.chunked or length is not None
                return body_complete and framed and _keep_alive(request, response)
            if kind == "truncate":
                if length:
                    client.sendall(response.raw())
                    _copy_exactly(up_reader, length // 2, send)
                    return False
                proxy._cancel(kind, key)  # no body to cut: relayed whole, not a fault
            client.sendall(response.raw() if mode is None else proxy.edit_response(request, response, None))
            if no_body:
                pass
            elif response.chunked:
                _copy_chunked(up_reader, send)
            elif length is not None:
                _copy_exactly(up_reader, length, send)
            else:  # delimited by the upstream closing its connection: the client's must close too
                while piece := up_reader.read1(_PIECE):
                    send(piece)
                return False
            return body_complete and _keep_alive(request, response)
        finally:
            proxy._track(upstream, add=False)
            up_reader.close()
            upstream.close()


def _status(response: _Message) -> int:
    parts = response.start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {response.start!r}")
    return int(parts[1])


def _keep_alive(request: _Message, response: _Message | None) -> bool:
    if "close" in request.tokens("connection"):
        return False
    if response is not None and "close" in response.tokens("connection"):
        return False
    return not request.start.endswith(b"HTTP/1.0")  # HTTP/1.0 keep-alive is not worth supporting


def _error_response(kind: str, method: str, number: int) -> bytes:
    status, code, message = _ERRORS[kind]
    request_id = f"FAULT{number:012d}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
    ).encode()
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: application/xml\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"x-amz-request-id: " + request_id.encode() + b"\r\n"
        b"\r\n"
    )
    return head if method == "HEAD" else head + body
