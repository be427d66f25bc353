"""docs/configuration.md's settings tables and `.env.example` list every setting Herald reads,
with the defaults the code really uses (regenerate with `python scripts/settings_doc.py
write`), and every setting explains itself: a one-line meaning and a known concern."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from gateway import lifecycle
from mesh.settings import CONCERNS
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
    for variable in doc.variables():
        assert f"| `{variable.env}` |" in readme


def test_env_example_lists_every_setting() -> None:
    doc = settings_doc()
    example = (ROOT / ".env.example").read_text()
    assert doc.env_file() == example, ".env.example is stale: scripts/settings_doc.py write"
    names = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line[:80]}
    assert {variable.env for variable in doc.variables()} <= names


def test_every_setting_has_a_one_line_meaning() -> None:
    variables = list(settings_doc().variables())
    blank = [v.env for v in variables if not v.description.strip()]
    assert not blank, f"settings without a description= (a one-line meaning): {blank}"
    multiline = [v.env for v in variables if "\n" in v.description]
    assert not multiline, f"descriptions on several lines: {multiline}"


def test_every_setting_has_a_known_concern() -> None:
    unknown = {v.env: v.concern for v in settings_doc().variables() if v.concern not in CONCERNS}
    assert not unknown, (
        f"settings without json_schema_extra=concern(...) naming one of {CONCERNS}: {unknown}"
    )


def test_the_tables_group_each_process_by_concern_in_order() -> None:
    groups = [(section, about) for section, about, _ in settings_doc().grouped()]
    assert len(groups) == len(set(groups)), "a process's concern appears twice"
    for section in {section for section, _ in groups}:
        order = [CONCERNS.index(about) for s, about in groups if s == section]
        assert order == sorted(order), f"{section}: concerns out of order"


def test_readme_shows_the_statuses_as_the_lifecycle_defines_them() -> None:
    readme = (ROOT / "README.md").read_text()
    assert lifecycle.status_table() in readme, (
        "README.md's status table differs from gateway/lifecycle.py STATUS_MEANINGS"
    )
    assert set(lifecycle.STATUS_MEANINGS) == lifecycle.STATUSES
