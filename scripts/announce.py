"""Wait until the platform answers, then print where it is and how to log in.

Runs as the last process of `make run`; it stays alive (honcho stops the whole
platform when any process exits) and exits on Ctrl-C with the others.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from pathlib import Path


def main() -> int:
    """Poll the gateway's /readyz, then print URL and admin credentials."""
    port = os.environ.get("GATEWAY_PORT", "8080")
    base = f"http://127.0.0.1:{port}"
    data_dir = Path(os.environ.get("CRM_DATA_DIR", ".data"))
    deadline = time.monotonic() + 180
    ready = False
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    ready = True
                    break
        except OSError:
            pass
        time.sleep(1)
    if not ready:
        print(f"The platform did not become ready within 180 s; check the logs above ({base}/readyz).", flush=True)
        signal.pause()
        return 1
    password_file = data_dir / "admin-password"
    if os.environ.get("CRM_ADMIN_PASSWORD"):
        password = "(the value of CRM_ADMIN_PASSWORD)"
    elif password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = f"(see {password_file})"
    bar = "=" * 64
    print(
        f"\n{bar}\n"
        f"  CRM platform is up  /  客户管理平台已启动\n"
        f"  API:       {base}/api/v1\n"
        f"  API docs:  {base}/api/v1/docs   (OpenAPI: {base}/api/v1/openapi.json)\n"
        f"  Login:     tenant 'default', user 'admin', password: {password}\n"
        f"  Try:       curl -s -X POST {base}/api/v1/auth/login -H 'Content-Type: application/json' \\\n"
        f'               -d \'{{"username": "admin", "password": "{password}"}}\'\n'
        f"  Stop:      Ctrl-C\n"
        f"{bar}\n",
        flush=True,
    )
    signal.pause()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
