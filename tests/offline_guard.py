"""The tests' offline guard: every attempt to reach an address other than loopback is recorded and
fails the test it happened in, even when the code under test swallowed the error.

pytest-socket (`--allow-hosts` in pyproject.toml) refuses such connections, but it raises inside
the code under test, where a broad `except` can swallow the error and let the test pass. The
guard sees each attempt twice over: pytest-socket's refusals (its error class records itself
here), and a Python audit hook, in every thread, for what pytest-socket does not cover:
`connect_ex`, `sendto` (UDP), name lookups (DNS) and connections made while it is off. The audit
hook also refuses what it sees, so nothing leaves the machine. `tests/conftest.py` wires it in:
`OUTBOUND.check()` at each test's teardown, leftovers from outside any test at the session's end.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from typing import Any

import pytest
import pytest_socket  # type: ignore[import-untyped]

# Names that always mean this machine (RFC 6761 reserves *.localhost too).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# Audit events that reach the network: (event, index of the address in its arguments).
_CONNECTS = {"socket.connect": 1, "socket.sendto": 1, "socket.sendmsg": 1}
_LOOKUPS = {"socket.getaddrinfo": 0, "socket.gethostbyname": 0, "socket.gethostbyaddr": 0}


class OutboundConnectionError(ConnectionRefusedError):
    """Raised by the audit hook for a non-loopback attempt (an `OSError`, as a real network
    failure would be)."""


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: object) -> bool:
    """Whether `host` (a name or an address, as given to connect or a lookup) is this machine:
    loopback, the unspecified address, a local name, or no host at all (a passive lookup)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "":
        return True
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%")[0].rstrip(".").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


class OutboundGuard:
    """Records attempts to reach a non-loopback address, from any thread."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.outside_tests: list[str] = []
        self._lock = threading.Lock()

    def note(self, event: str, host: object, port: object = None) -> None:
        where = f"{host}:{port}" if port is not None else f"{host}"
        with self._lock:
            self.attempts.append(f"{event} {where}")

    def take(self) -> list[str]:
        """The attempts recorded since the last call (and forget them)."""
        with self._lock:
            found, self.attempts = self.attempts, []
        return found

    def check(self) -> None:
        """Fail (as a test failure) if any attempt was recorded since the last `take`/`check`."""
        found = self.take()
        if found:
            listed = "\n  ".join(dict.fromkeys(found))
            pytest.fail(
                f"{len(found)} attempt(s) to reach a non-loopback address (tests run offline; "
                f"the code under test may have swallowed the error):\n  {listed}",
                pytrace=False,
            )

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """`sys.addaudithook` callback: record and refuse non-loopback socket activity."""
        if not event.startswith("socket."):
            return
        if event in _CONNECTS:
            sock, address = args[0], args[_CONNECTS[event]]
            if getattr(sock, "family", None) == getattr(socket, "AF_UNIX", None):
                return
            if not isinstance(address, tuple) or not address:
                return
            host, port = address[0], address[1] if len(address) > 1 else None
        elif event in _LOOKUPS:
            host, port = args[_LOOKUPS[event]], None
            if event == "socket.getaddrinfo":
                port = args[1]
                # A numeric address is converted without asking anyone: no traffic.
                if isinstance(host, str | bytes) and is_ip(
                    host.decode("ascii", "replace") if isinstance(host, bytes) else host
                ):
                    return
        else:
            return
        if is_loopback(host):
            return
        self.note(event, host, port)
        raise OutboundConnectionError(f"offline tests: no connection to {host} ({event})")


OUTBOUND = OutboundGuard()


class _RecordedBlock(pytest_socket.SocketConnectBlockedError):  # type: ignore[misc]
    """pytest-socket's refusal, recorded before it is raised (and perhaps swallowed)."""

    def __init__(self, allowed: Any, host: Any, *args: Any, **kwargs: Any) -> None:
        if not is_loopback(host):  # None: a Unix socket, refused without --allow-unix-socket
            OUTBOUND.note("socket.connect", host)
        super().__init__(allowed, host, *args, **kwargs)


def install() -> None:
    """Start recording: once per process (audit hooks cannot be removed)."""
    if getattr(sys, "_citeqa_outbound_guard", False):
        return
    sys._citeqa_outbound_guard = True  # type: ignore[attr-defined]
    # pytest-socket's connect guard looks its error class up at each refusal.
    pytest_socket.SocketConnectBlockedError = _RecordedBlock
    sys.addaudithook(OUTBOUND.audit)
