"""Whether the Hugging Face hub can be used now, decided in seconds (models and data sets both ask).

Offline variables (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE) or a TCP connection to the hub
endpoint that does not open within a few seconds mean "no": callers then fail at once with a clear message
instead of letting the hub clients retry for half a minute.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

from huggingface_hub import constants as hf_constants

DEFAULT_CONNECT_TIMEOUT_S = 3.0

_TRUE = {"1", "true", "yes", "on"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline_reason(connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> str | None:
    """Return why the hub cannot be used now (an offline variable, no connection), or None if it can."""
    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    if getattr(hf_constants, "HF_HUB_OFFLINE", False):
        return "huggingface_hub runs in offline mode (HF_HUB_OFFLINE was set at import)"
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return None  # a direct TCP probe says nothing about a proxied connection: let the hub client try
    endpoint = hf_constants.ENDPOINT
    if not hub_reachable(endpoint, connect_timeout_s):
        return f"no connection to {endpoint} within {connect_timeout_s:g} s"
    return None


def hub_reachable(endpoint: str, timeout_s: float) -> bool:
    """Return whether a TCP connection to ``endpoint`` (a URL) opens within ``timeout_s`` seconds.

    The probe runs in a daemon thread, so a DNS lookup that hangs cannot hold the caller past the timeout.
    """
    parsed = urlparse(endpoint)
    if parsed.hostname is None:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: dict[str, bool] = {}

    def probe() -> None:
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=probe, name="prefixlab-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return result.get("ok", False)
