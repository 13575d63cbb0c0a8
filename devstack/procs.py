"""Child processes of the stack: each in its own session, output prefixed with its name, stopped in order."""

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Child:
    name: str
    cmd: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stop_signal: int = signal.SIGTERM
    # seconds between the stop signal and SIGKILL: cover the child's own graceful shutdown
    stop_timeout: float = 20
    out: object = field(default=sys.stdout, repr=False)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, stdin=None) -> "Child":
        # a session of its own: Ctrl-C reaches only ./run-stack, which then stops the children in order
        self.proc = subprocess.Popen(  # noqa: S603 (commands built by devstack)
            list(self.cmd),
            env={**os.environ, **(self.env or {})},
            cwd=self.cwd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True, name=f"log-{self.name}")
        self._pump_thread.start()
        return self

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.out.write(f"[{self.name}] {line}")
            self.out.flush()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float | None = None) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def run_step(
    name: str, cmd: Sequence[str], env: Mapping[str, str] | None = None, stdin_text: str | None = None
):
    """A one-shot command, its output streamed with the name as prefix; raises when it fails."""
    child = Child(name, cmd, env).start(
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL
    )
    if stdin_text is not None:
        child.proc.stdin.write(stdin_text)
        child.proc.stdin.close()
    code = child.proc.wait()
    child._pump_thread.join(5)
    if code != 0:
        raise RuntimeError(f"{name} failed with exit code {code}")
