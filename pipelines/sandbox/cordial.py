"""Sandbox for the cordial API (placeholder: answers 501 until implemented)."""

from __future__ import annotations

from pipelines.sandbox.http import Provider, Request, Response, SandboxContext, json_response


class CordialSandbox(Provider):
    name = "cordial"

    def handle(self, request: Request, ctx: SandboxContext) -> Response:
        return json_response({"error": "not implemented in the sandbox yet"}, 501)
