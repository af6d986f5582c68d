#!/usr/bin/env python3
"""Writes the seed inputs of meshd's fuzz targets into fuzz/seeds/TARGET/ (run from anywhere).

Each seed is an input the target's header comment describes: a starting point a mutation
away from the interesting paths (valid requests, real WireGuard message shapes, TSO segments).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                    bytes(src), bytes(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, proto, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64, bytes(src),
                       bytes(dst)) + payload


def tcp(seq, payload, flags=0x18):
    return struct.pack("!HHIIBBHHH", 40000, 5201, seq, 1, 5 << 4, flags, 65535, 0, 0) + payload


def udp(payload):
    return struct.pack("!HHHH", 40000, 5201, 8 + len(payload), 0) + payload


def vnet(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset):
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def record(tag, body):
    """A record of fuzz/src/lib.rs `records`: the whole rest when the length byte is 0."""
    return bytes([tag, 0]) + body


A, B = [10, 100, 0, 1], [10, 100, 0, 2]
A6 = [0xFD, 0] + [0] * 13 + [1]
B6 = [0xFD, 0] + [0] * 13 + [2]

# config: the example mesh, a minimal one, and one with errors.
with open(os.path.join(HERE, "..", "config", "mesh.example.yaml")) as f:
    write("config", "example", f.read())
write("config", "minimal", """nodes:
  - name: a
    public_key: "ff1bya/Pqu9f2yBelQtjLNi+E0nttUfszmEOZ4LLlVE="
    address: 10.100.0.1/24
    endpoint: 192.0.2.1:51820
  - name: b
    public_key: "EDhbdkymN1zaxW62JX8+zpa9twzzFlz5g675rGtOr1o="
    address: 10.100.0.2/24
    routes: [192.168.50.0/24]
    keepalive: 25
policy:
  - from: a
    to: "*"
    allow: [tcp/22, udp/53, tcp/8000-8100, icmp]
""")
write("config", "errors", """interface: {mtu: 99, listen_port: 70000, metrics: nowhere}
admin: {ssh_from: [300.1.1.1/40], icmp_rate: 5/fortnight}
nodes:
  - name: a
    public_key: "short"
    address: 10.100.0.1/33
  - name: a
    address: 10.100.0.1/24
policy:
  - from: ghost
    to: [a, a]
    allow: [tcp/0, sctp/1]
""")

# control: the four commands, in one stream and alone; broken JSON.
write("control", "all", b"\x00" + b'{"cmd":"peers"}\n{"cmd":"status"}\n'
      b'{"cmd":"whois","address":"10.100.0.1"}\n{"cmd":"reload"}\n')
write("control", "whois_chunked", b"\x03" + b'{"cmd":"whois","address":"fd00::2"}\n\n')
write("control", "broken", b"\x07" + b'{"cmd":"peers","extra":[1,2]}\n{"cmd":\n[]\n"x"\n')

# uapi: get, set with a body, a get with trailing bytes.
write("uapi", "get", b"\x00get=1\n\n")
write("uapi", "set", b"\x05set=1\nprivate_key=" + b"00" * 32 + b"\nlisten_port=1\n\n")
write("uapi", "get_trailing", b"\x01get=1\nget=1\n\nset=1\n")

# http: what Prometheus sends, a HEAD, an unknown method and path.
write("http", "scrape", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9586\r\n"
      b"User-Agent: Prometheus/2.45.3\r\nAccept: text/plain;version=0.0.4\r\n\r\n")
write("http", "head", b"HEAD /?x=1 HTTP/1.0\r\n\r\n")
write("http", "bad", b"POST /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/2\r\n\r\n")

# node_datagrams: real data from a (tag 5), inner packets a encrypts (tag 4), and raw
# handshake and data shapes from a's endpoint and strangers (tags 0-3).
write("node_datagrams", "real_data", record(5, b"\0" * 64))
write("node_datagrams", "inner_v4", record(4, ipv4(A, B, 17, udp(b"hello b"))))
write("node_datagrams", "inner_spoofed", record(4, ipv4([10, 100, 0, 9], B, 6, tcp(1, b"x"))))
write("node_datagrams", "inner_routed", record(4, ipv4(A, [192, 168, 50, 9], 1, b"\x08\0" + b"\0" * 30)))
write("node_datagrams", "shapes",
      bytes([0, 148 // 8]) + b"\x01" + b"\0" * 143
      + bytes([1, 96 // 8]) + b"\x02" + b"\0" * 95
      + bytes([2, 64 // 8]) + b"\x03" + b"\0" * 63
      + bytes([0, 0]) + b"\x04\0\0\0" + b"\x01\0\0\0" + b"\0" * 40)

# node_messages: the genuine initiation a→b as is (mode 1) and b→a (mode 2), with and without
# mac1 fixed and under load; raw messages of each type with mac1 fixed.
for head in (0x10, 0x19, 0x50, 0x20, 0x28, 0x61):
    write("node_messages", "mode_%02x" % head, bytes([head]))
write("node_messages", "raw_init", bytes([0x48]) + b"\x01" + b"\0" * 147)
write("node_messages", "raw_response", bytes([0x48]) + b"\x02" + b"\0" * 91)
write("node_messages", "raw_cookie", bytes([0x40]) + b"\x03" + b"\0" * 63)

# tun_gso_split: TSO over IPv4 and IPv6, USO, and one segment with no GSO.
payload = bytes(range(256)) * 11
seg4 = ipv4(A, B, 6, tcp(1000, payload))
write("tun_gso_split", "tcp4", vnet(1, 1, 40, 1380, 20, 16) + seg4)
seg6 = ipv6(A6, B6, 6, tcp(1000, payload))
write("tun_gso_split", "tcp6", vnet(1, 4, 60, 1360, 40, 16) + seg6)
useg = ipv4(A, B, 17, udp(payload))
write("tun_gso_split", "udp4", vnet(1, 5, 28, 1392, 20, 6) + useg)
write("tun_gso_split", "none", vnet(0, 0, 0, 0, 0, 0) + ipv4(A, B, 17, udp(b"one")))

# tun_gro_merge: consecutive segments of one TCP flow, two UDP datagrams of one flow, and a
# mix. A record's packet is its tag byte and body, so the tag is the version/IHL byte.
def as_record(packet, last=False):
    body = packet[1:]
    if last:
        return bytes([packet[0], 0]) + body
    assert len(body) % 8 == 0 and len(body) // 8 < 256, len(body)
    return bytes([packet[0], len(body) // 8]) + body


def tcp_flow(n, size, v6=False):
    out = b""
    for i in range(n):
        # 1 + 8k bytes in all: a header of 40 (or 60) bytes and the rest payload.
        hdr = 60 if v6 else 40
        data = bytes([i]) * (size - hdr)
        p = (ipv6(B6, A6, 6, tcp(1 + i * len(data), data, 0x10)) if v6
             else ipv4(B, A, 6, tcp(1 + i * len(data), data, 0x10)))
        out += as_record(p, last=(i == n - 1))
    return out


write("tun_gro_merge", "tcp4_flow", b"\0" + tcp_flow(4, 1 + 8 * 150))
write("tun_gro_merge", "tcp6_flow", b"\0" + tcp_flow(3, 1 + 8 * 150, v6=True))
u = b"".join(as_record(ipv4(B, A, 17, udp(bytes([i]) * (1 + 8 * 100 - 28))), last=(i == 2))
             for i in range(3))
write("tun_gro_merge", "udp4_flow", b"\x01" + u)
