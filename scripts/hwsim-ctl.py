#!/usr/bin/env python3
"""hwsim-ctl.py SOCKET COMMAND...: sends one fault command to a running
hw-sim's control socket (docs/device.md, "Fault injection") and prints the
reply; exits 1 if hw-sim answered "error ..." or could not be reached."""
import socket
import sys

if len(sys.argv) < 3:
    sys.exit("usage: hwsim-ctl.py SOCKET COMMAND...")
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sys.argv[1])
        s.sendall((" ".join(sys.argv[2:]) + "\n").encode())
        reply = s.makefile().readline().strip()
except OSError as e:
    sys.exit(f"hwsim-ctl: {sys.argv[1]}: {e}")
print(reply)
sys.exit(0 if reply.startswith("ok") else 1)
