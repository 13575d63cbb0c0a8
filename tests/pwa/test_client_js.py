"""The JavaScript client's unit tests (tests/pwa/client.test.mjs) under node's own test runner."""

import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).with_name("client.test.mjs")


def test_the_js_client_passes_its_node_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node (apt-get install nodejs) to run the JS client's tests")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.skip(f"node {version.strip()} has no test runner (node 18+)")
    done = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(TESTS)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout
