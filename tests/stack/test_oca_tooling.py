"""The addon is held to OCA's tooling: the mandatory pylint-odoo checks, oca-checks-odoo-module and
oca-checks-po, the manifest keys OCA reads, a README.rst generated from readme/, and the pre-commit
configuration passing on the whole tree."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.stack.facts import ADDON, REPO

BIN = Path(sys.executable).parent
MANIFEST = ast.literal_eval((ADDON / "__manifest__.py").read_text())
OCA_STATUSES = {"Alpha", "Beta", "Production/Stable", "Mature"}


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(path)


def run(*command: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def test_pylint_odoo_mandatory_checks_find_nothing():
    done = run(tool("pylint"), "--rcfile=.pylintrc-mandatory", "--output-format=text", "addons/ai_generation")
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_mandatory_config_enables_checks_pylint_odoo_knows():
    # an unknown name in enable= is only a warning: a typo would silently drop a check
    done = run(tool("pylint"), "--rcfile=.pylintrc-mandatory", "addons/ai_generation/__init__.py")
    assert "unknown-option-value" not in done.stdout, done.stdout


def test_oca_module_and_po_checks_find_nothing():
    module = run(tool("oca-checks-odoo-module"), "addons/ai_generation/__manifest__.py")
    assert module.returncode == 0, module.stdout + module.stderr
    catalogues = sorted(str(p.relative_to(REPO)) for p in (ADDON / "i18n").glob("*.po*"))
    po = run(tool("oca-checks-po"), "--disable=po-pretty-format", *catalogues)
    assert po.returncode == 0, po.stdout + po.stderr


def test_manifest_has_the_keys_oca_reads():
    assert MANIFEST["development_status"] in OCA_STATUSES
    assert MANIFEST["maintainers"] and all(isinstance(m, str) and m for m in MANIFEST["maintainers"])
    assert MANIFEST["website"].startswith("https://github.com/")
    assert MANIFEST["license"] == "AGPL-3" and MANIFEST["version"].startswith("18.0.")


def test_readme_rst_is_generated_from_the_fragments():
    pytest.importorskip("pypandoc", reason="pypandoc-binary renders readme/*.md (pip install -e '.[test]')")
    done = run(sys.executable, "scripts/gen_addon_readme.py", "--check")
    assert done.returncode == 0, done.stderr
    readme = (ADDON / "README.rst").read_text()
    for fragment, heading in (
        ("INSTALL", "Installation"),
        ("CONFIGURE", "Configuration"),
        ("USAGE", "Usage"),
    ):
        assert (ADDON / "readme" / f"{fragment}.md").is_file()
        assert f"\n{heading}\n{'=' * len(heading)}\n" in readme
    assert "!! source digest: sha256:" in readme


def test_pre_commit_hooks_are_local_with_pinned_tools():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert {repo["repo"] for repo in config["repos"]} == {"local"}  # nothing fetched from a git host
    ids = {hook["id"] for hook in hooks}
    assert {
        "ruff",
        "ruff-format",
        "pylint_odoo",
        "prettier",
        "oca-checks-odoo-module",
        "oca-gen-addon-readme",
    } <= ids
    for hook in hooks:
        for dependency in hook.get("additional_dependencies", []):
            assert "==" in dependency or "@" in dependency.lstrip("@"), f"{hook['id']}: pin {dependency}"
    pylint = next(hook for hook in hooks if hook["id"] == "pylint_odoo")
    assert "--rcfile=.pylintrc-mandatory" in pylint["entry"]


@pytest.mark.slow
def test_pre_commit_run_all_files_passes(tmp_path):
    """On a copy of the tree (the hooks fix files in place): no hook fails, no file changes."""
    pre_commit = tool("pre-commit")
    if not shutil.which("node"):
        pytest.skip("no node for the prettier hook (apt-get install nodejs npm)")
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    copy = tmp_path / "tree"
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet committed
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        else:
            shutil.copy2(source, target)
    for command in (("git", "init", "-q"), ("git", "add", "-A")):
        assert run(*command, cwd=copy).returncode == 0
    done = run(pre_commit, "run", "--all-files", "--show-diff-on-failure", cwd=copy, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
