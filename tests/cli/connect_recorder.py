#!/usr/bin/env python3
"""A proxy on 127.0.0.1 that answers nothing: it writes the first line of each request it gets (for HTTPS through a
proxy, "CONNECT host:443 HTTP/1.1") to a file, one line each, and closes the connection. A client pointed at it with
https_proxy shows which host it would have contacted, and nothing leaves the machine.

    connect_recorder.py PORT_FILE LOG_FILE      runs until killed"""
import os
import socket
import sys

port_file, log_file = sys.argv[1], sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
with open(log_file, "a") as log:
    while True:
        c, _ = s.accept()
        c.settimeout(5)
        data = b""
        try:
            while b"\r\n" not in data and len(data) < 8192:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        log.write(data.split(b"\r\n")[0].decode("latin-1") + "\n")
        log.flush()
        c.close()
