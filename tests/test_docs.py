"""docs/configuration.md's settings table and `.env.example` list every setting Herald reads, with
the defaults the code really uses (regenerate with `python scripts/settings_doc.py write`)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from gateway import lifecycle
from tests.support.processes import ROOT


def settings_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc", ROOT / "scripts/settings_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_lists_every_setting() -> None:
    doc = settings_doc()
    readme = (ROOT / "docs" / "configuration.md").read_text()
    assert doc.readme(readme) == readme, (
        "docs/configuration.md is stale: scripts/settings_doc.py write"
    )
    for _, env, _, _ in doc.variables():
        assert f"| `{env}` |" in readme


def test_env_example_lists_every_setting() -> None:
    doc = settings_doc()
    example = (ROOT / ".env.example").read_text()
    assert doc.env_file() == example, ".env.example is stale: scripts/settings_doc.py write"
    names = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line[:80]}
    assert {env for _, env, _, _ in doc.variables()} <= names


def test_readme_shows_the_statuses_as_the_lifecycle_defines_them() -> None:
    readme = (ROOT / "README.md").read_text()
    assert lifecycle.status_table() in readme, (
        "README.md's status table differs from gateway/lifecycle.py STATUS_MEANINGS"
    )
    assert set(lifecycle.STATUS_MEANINGS) == lifecycle.STATUSES
