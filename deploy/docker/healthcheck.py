"""Container health check for responder: exit 0 when GET /healthz answers 200, else 1.

The slim Python image has no curl, so the Dockerfile's HEALTHCHECK runs this with the image's Python.
It asks the daemon on this container's loopback: port $PORT when set (Railway, Fly), else 8080, the port
in the bundled responder.yaml. RESPONDER_HEALTHCHECK_URL overrides the whole URL. Proxies are ignored.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("PORT") or "8080"
    url = os.environ.get("RESPONDER_HEALTHCHECK_URL") or f"http://127.0.0.1:{port}/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as reply:
            if reply.status == 200:
                return 0
            print(f"unhealthy: {url} answered {reply.status}", file=sys.stderr)
    except (OSError, ValueError) as exc:  # connection refused, timeout, HTTP 5xx (HTTPError), a bad URL
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
