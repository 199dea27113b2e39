#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A loopback DNS stub for the bats tests: answers every A question with
# the address given, every other question with no answer (NOERROR), over
# UDP. Prints its port, then serves until killed.
#   fake_dns.py 127.0.0.1
import socket
import struct
import sys

ip = socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(4096)
    if len(data) < 12:
        continue
    qid, flags = struct.unpack(">HH", data[:4])
    end = 12
    while end < len(data) and data[end] != 0:
        end += data[end] + 1
    end += 5  # the root label, QTYPE, QCLASS
    if end > len(data):
        continue
    question = data[12:end]
    qtype = struct.unpack(">H", data[end - 4:end - 2])[0]
    answer = b""
    if qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + ip
    header = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, 1 if answer else 0, 0, 0)
    s.sendto(header + question + answer, peer)
