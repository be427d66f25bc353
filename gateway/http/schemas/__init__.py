"""Pydantic models of the edge's JSON: requests refuse unknown fields, responses are exact."""
