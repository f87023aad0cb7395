"""Container HEALTHCHECK: is this container's service alive (GET /health answers 200)?

One image runs all five services: the gateway listens on TAMS_GATEWAY_PORT, the others on
TAMS_HTTP_PORT, and a container runs exactly one of them, so the first of the two ports that
answers is this container's service. Standard library only; exits 0 (healthy) or 1.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def main() -> int:
    ports = [os.environ.get("TAMS_HTTP_PORT", "8080"), os.environ.get("TAMS_GATEWAY_PORT", "8000")]
    return 0 if any(healthy(port) for port in ports) else 1


if __name__ == "__main__":
    sys.exit(main())
