"""What a run sends to (`Seed`), and the template and users `Stack.seed` creates for it
through the REST edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEMPLATE_CODE = "bench/welcome"


@dataclass
class Seed:
    """What the bench created to send to."""

    api_key: str
    user_ids: tuple[str, ...]
    template_code: str = TEMPLATE_CODE


def template_body() -> dict[str, Any]:
    return {
        "code": TEMPLATE_CODE,
        "name": "Bench welcome",
        "default_language": "en",
        "contents": [
            {
                "language": "en",
                "email": {
                    "subject": "Welcome, {{ name }}",
                    "html_body": "<p>Hello <b>{{ name }}</b>, start here: "
                    '<a href="{{ link }}">{{ link }}</a></p>',
                    "text_body": "Hello {{ name }}, start here: {{ link }}",
                },
                "sms": {"text": "Welcome, {{ name }}: {{ link }}"},
                "push": {"title": "Welcome", "body": "Hello {{ name }}"},
            }
        ],
    }


def user_body(run_id: str, number: int) -> dict[str, Any]:
    return {
        "name": f"Bench user {number}",
        "email": f"bench.{run_id}.{number}@example.com",
        "password": "bench password, never used",
        "phone": f"+1415555{number % 10000:04d}",
        "preferences": {"email": True, "sms": True, "push": False},
    }
