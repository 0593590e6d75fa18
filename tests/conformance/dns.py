"""A stand-in DNS server for the nginx live check (nginx's `resolver`).

    python dns.py MAP.json ADDR [ADDR…]      ADDR = IP (port 53) or IP:PORT

Answers A queries for the names in MAP.json ({"web": "127.0.1.1", "api": ["127.0.1.2", …]}
a name may have several addresses, a service's replicas), re-read on every
query so the check can move a name to another address while nginx runs; NXDOMAIN for other
names, an empty answer for other types. Prints "ready" once every address listens; runs
until killed. UDP only: nginx's resolver asks over UDP.
"""

import json
import socket
import struct
import sys
import threading


def answer(query, names):
    if len(query) < 12:
        return None
    qid, _flags, qd = struct.unpack("!HHH", query[:6])
    if qd != 1:
        return None
    i, labels = 12, []
    while i < len(query) and query[i]:
        n = query[i]
        labels.append(query[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    i += 1
    if i + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[i:i + 4])
    question = query[12:i + 4]
    name = ".".join(labels).lower().rstrip(".")
    ip = names.get(name)
    rcode = 0 if ip else 3
    records = b""
    count = 0
    if ip and qtype == 1 and qclass == 1:
        # One address, or a list: every replica of a compose service.
        ips = ip if isinstance(ip, list) else [ip]
        records = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(a) for a in ips)
        count = len(ips)
    header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0)
    return header + question + records


def serve(sock, path):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            with open(path) as f:
                names = {k.lower(): v for k, v in json.load(f).items()}
        except (OSError, ValueError):
            names = {}
        reply = answer(data, names)
        if reply:
            sock.sendto(reply, peer)


def main():
    path, addrs = sys.argv[1], sys.argv[2:]
    socks = []
    for a in addrs:
        host, _, port = a.partition(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, int(port or 53)))
        socks.append(s)
    for s in socks:
        threading.Thread(target=serve, args=(s, path), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
