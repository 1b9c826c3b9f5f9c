"""A dockerconfigjson as a mounted secret holds it."""

from __future__ import annotations

import base64
import json


def secret_json(host: str, user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": token}}})
