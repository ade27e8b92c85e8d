"""Running the web app: uvicorn on a host and port, with a warning when the page is reachable from other machines."""

from __future__ import annotations

import ipaddress
import sys

from facemend.web.app import create_app
from facemend.web.limits import Limits

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


def serve(host: str = "127.0.0.1", port: int = 7860, limits: Limits | None = None, precision: str = "auto") -> None:
    """Serve the page and the JSON API until interrupted."""
    import uvicorn

    loopback = is_loopback(host)
    if not loopback:
        print(
            f"facemend: warning: serving on {host}, not a loopback address: anyone who can reach this machine "
            "can upload photos and use its CPU (there is no login)",
            file=sys.stderr,
        )
    allowed_hosts = (LOOPBACK_NAMES | {host}) if loopback else None  # off loopback, names are the user's choice
    app = create_app(limits, precision=precision, allowed_hosts=allowed_hosts)
    print(f"facemend: open http://{_url_host(host)}:{port}/ in a browser (Ctrl+C stops)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _url_host(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"  # an IPv6 address
    return host
