"""Which TCP sockets a set of processes listens on (Linux ``/proc``; no psutil needed).

Used to check that a locally started Ray listens on loopback only. A listening socket
is a line of ``/proc/net/tcp`` or ``/proc/net/tcp6`` in state ``0A`` (LISTEN); its inode
is matched to a process through the ``socket:[INODE]`` links in ``/proc/PID/fd``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LISTEN_STATE = "0A"


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket: its process, address and port."""

    pid: int
    name: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    @property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.address).is_unspecified

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.name} (pid {self.pid}) on {host}:{self.port}"


def supported() -> bool:
    """Whether this platform exposes sockets through ``/proc`` (Linux)."""
    return sys.platform.startswith("linux") and (PROC / "net" / "tcp").is_file()


def _decode(hex_address: str, family: int) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if family == socket.AF_INET:
        packed = struct.pack("<I", struct.unpack(">I", raw)[0])
    else:  # four little-endian 32-bit words
        packed = b"".join(struct.pack("<I", struct.unpack(">I", raw[i : i + 4])[0]) for i in range(0, 16, 4))
    return socket.inet_ntop(family, packed), int(port, 16)


def _listening_inodes() -> dict[int, tuple[str, int]]:
    inodes: dict[int, tuple[str, int]] = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = (PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN_STATE:
                inodes[int(fields[9])] = _decode(fields[1], family)
    return inodes


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` has open (empty if it is gone or not ours)."""
    found = set()
    try:
        entries = os.listdir(PROC / str(pid) / "fd")
    except OSError:
        return found
    for entry in entries:
        try:
            target = os.readlink(PROC / str(pid) / "fd" / entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def process_name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def descendants(pid: int) -> set[int]:
    """Process ids of every live descendant of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:
            stat = (PROC / entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listeners(pids: set[int] | list[int], *, exclude_inodes: set[int] = frozenset()) -> list[Listener]:  # type: ignore[assignment]
    """The listening TCP sockets of the processes ``pids`` (minus ``exclude_inodes``)."""
    listening = _listening_inodes()
    found = []
    for pid in sorted(set(pids)):
        for inode in sorted(socket_inodes(pid) - set(exclude_inodes)):
            if inode in listening:
                address, port = listening[inode]
                found.append(Listener(pid, process_name(pid), address, port))
    return found
