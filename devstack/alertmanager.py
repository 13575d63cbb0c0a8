"""Debian's prometheus-alertmanager on loopback with the repo's docker/alertmanager/alertmanager.yml."""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "docker" / "alertmanager" / "alertmanager.yml"


def binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def cmd(port: int, storage: Path, config: Path = CONFIG) -> list[str]:
    storage.mkdir(parents=True, exist_ok=True)
    return [
        binary(),
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]
