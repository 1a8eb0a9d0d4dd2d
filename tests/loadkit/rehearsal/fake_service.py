"""A stand-in service for the lifecycle tests: `fake_service.py PORT MODE`.

Modes: ok (serves /healthz 200), never-ready (serves 503), exit (exits 4 at once), child (also
starts a sleeping child in its group), stubborn (ignores SIGTERM). Prints its environment's
FAKE_* variables and argv, so the tests can check the placeholders.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, mode = int(sys.argv[1]), sys.argv[2]
print(
    "argv",
    sys.argv[1:],
    {k: v for k, v in os.environ.items() if k.startswith(("FAKE_", "LOADKIT_"))},
    flush=True,
)
if mode == "exit":
    print("cannot start: no database", flush=True)
    sys.exit(4)
if mode == "child":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503 if mode == "never-ready" else 200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
