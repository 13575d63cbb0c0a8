"""Free loopback ports and waiting for a server to answer."""

import socket
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (bind to 0), so parallel runs never collide."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, ok=lambda status: status < 500, proc=None) -> None:
    """Poll ``url`` until it answers with a status ``ok`` accepts; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback URL built here)
                if ok(resp.status):
                    return
                last = resp.status
        except urllib.error.HTTPError as exc:
            if ok(exc.code):
                return
            last = exc.code
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last: {last})")
