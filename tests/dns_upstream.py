"""A tiny authoritative DNS server on loopback (UDP and TCP), for the tests of CoreDNS's
forwarding: it stands for Fly's resolver, answers a few fixed names, says NXDOMAIN to the rest
and records every question, so a test can tell a name really went upstream, with no network."""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Mapping

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

# name -> {record type: [values]}
RECORDS: Mapping[str, Mapping[str, list[str]]] = {
    "outside.flyk.test.": {"A": ["192.0.2.7"], "AAAA": ["2001:db8::7"]},
}


class UpstreamDNS:
    def __init__(self, records: Mapping[str, Mapping[str, list[str]]] = RECORDS) -> None:
        self.records = records
        self.questions: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        upstream = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(upstream.answer(data), self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                (length,) = struct.unpack("!H", head)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = upstream.answer(data)
                self.request.sendall(struct.pack("!H", len(reply)) + reply)

        self._udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
        port = self._udp.server_address[1]
        # The same port for TCP, as a resolver expects (forward retries a truncated answer there).
        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
        self.port = int(port)
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
            for server in (self._udp, self._tcp)
        ]

    def start(self) -> UpstreamDNS:
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def asked(self, name: str) -> list[str]:
        """The record types asked for `name`, in order."""
        with self._lock:
            return [kind for asked, kind in self.questions if asked == name]

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().lower()
            kind = dns.rdatatype.to_text(question.rdtype)
            with self._lock:
                self.questions.append((name, kind))
            known = self.records.get(name)
            if known is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            values = known.get(kind, [])
            if values:
                response.answer.append(dns.rrset.from_text_list(name, 30, "IN", kind, values))
        return response.to_wire()
