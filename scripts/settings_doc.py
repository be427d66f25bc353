"""Prints every environment variable Herald reads, with its default and meaning.

`python scripts/settings_doc.py markdown` → the README table;
`python scripts/settings_doc.py env` → the body of .env.example.
A test checks that both files list every variable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from deliveryd.settings import DeliverydSettings
from gateway.settings import GatewaySettings
from mesh.settings import CommonSettings
from templated.settings import TemplatedSettings
from userd.settings import UserdSettings

SECTIONS: list[tuple[str, type[BaseSettings]]] = [
    ("every process", CommonSettings),
    ("gateway", GatewaySettings),
    ("userd", UserdSettings),
    ("templated", TemplatedSettings),
    ("deliveryd", DeliverydSettings),
]


def variables() -> Iterator[tuple[str, str, str, str]]:
    """(section, NAME, default, description) for every setting, each name once."""
    seen: set[str] = set()
    for section, cls in SECTIONS:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
            if env in seen:
                continue
            seen.add(env)
            default = field.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = default.get_secret_value()
            if isinstance(default, (dict, list, tuple)):
                text = json.dumps(default, separators=(",", ":"))
            else:
                text = "" if default is None else str(default)
            yield section, env, text, (field.description or "").replace("|", "\\|")


def main(kind: str) -> None:
    if kind == "markdown":
        sys.stdout.write("| variable | default | used by | meaning |\n|---|---|---|---|\n")
        for section, env, default, description in variables():
            sys.stdout.write(f"| `{env}` | `{default}` | {section} | {description} |\n")
    else:
        current = ""
        for section, env, default, description in variables():
            if section != current:
                sys.stdout.write(f"\n# {section}\n")
                current = section
            if description:
                sys.stdout.write(f"# {description}\n")
            sys.stdout.write(f"{env}={default}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "markdown")
