"""Where the user's model and data live: checks that import nothing heavy, so the CLI runs them before it
imports torch or datasets, and the loaders run the same ones (one rule, one message)."""

from __future__ import annotations

import os
from pathlib import Path

from autolor2c.errors import UserError


def local_model_folder(name: str) -> Path | None:
    """The folder of a local model, or None when ``name`` reads as a hub id ("name" or "org/name")."""
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError("folder has no config.json (not a transformers model)", param="model", value=name)
        return p
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError("no such folder (a hub id is NAME or ORG/NAME)", param="model", value=name)
    return None


def data_folder(data_dir: str) -> Path:
    """A data folder the user named: it must exist."""
    p = Path(data_dir).expanduser()
    if not p.is_dir():
        raise UserError("no such folder", param="data_dir", value=str(data_dir))
    return p


# ---------------------------------------------------------------------------------------------
# Whether the Hugging Face hub can be reached. Its clients retry an unreachable hub five times with back-off
# (about 20 s and a dozen log lines) before they fail; the loaders ask here first and, offline, read only
# the local cache, so a missing file is one line at once.

HUB_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
HUB_PROBE_TIMEOUT_S = 3.0
_probed: dict[str, str | None] = {}


def hub_endpoint() -> str:
    """The hub's address as the Hugging Face clients see it ($HF_ENDPOINT, else huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")


def _offline_var() -> str | None:
    for var in HUB_OFFLINE_VARS:
        if os.environ.get(var, "").strip().upper() in _TRUE_VALUES:
            return var
    return None


def hub_offline_reason() -> str | None:
    """Why the Hugging Face hub is out of reach now ("HF_HUB_OFFLINE is set", "cannot reach ..."), or None.

    An offline variable decides alone. Otherwise one request to the endpoint, with a short timeout and no
    retries (once per endpoint and process), decides: any answer from a server, an error status or a
    certificate the stdlib does not trust included, counts as reachable and leaves the decision to the
    hub's own client; only a failed connection (refused, no route, no such name, time-out) counts as
    offline. Proxies are honoured as the hub's client honours them ($HTTPS_PROXY, $NO_PROXY).
    """
    var = _offline_var()
    if var is not None:
        return f"{var} is set"
    endpoint = hub_endpoint()
    if endpoint not in _probed:
        _probed[endpoint] = _probe(endpoint)
    return _probed[endpoint]


def _probe(endpoint: str) -> str | None:
    import socket
    import ssl
    import urllib.error
    import urllib.request

    try:
        request = urllib.request.Request(endpoint, method="HEAD", headers={"User-Agent": "autolor2c"})
        with urllib.request.urlopen(request, timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:  # the server answered
        return None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):  # a server answered; the hub's client has its own certificates
            return None
        why = e.reason
    except ssl.SSLError:
        return None
    except (OSError, ValueError) as e:  # a time-out, a reset connection, a malformed $HF_ENDPOINT
        why = e
    if isinstance(why, (socket.timeout, TimeoutError)):
        why = f"no answer in {HUB_PROBE_TIMEOUT_S:g} s"
    elif isinstance(why, OSError) and why.strerror:
        why = why.strerror
    return f"cannot reach {endpoint}: {why}"


def offline_advice() -> str:
    """The way back online, for a message that already says what to give instead."""
    var = _offline_var()
    return f"or unset {var} and go online" if var else "or go online"
