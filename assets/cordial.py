"""Cordial: a destination only. Nothing is landed from it; the reverse sync (assets/reverse_sync/)
pushes contacts and orders to it through its client, resources/cordial.py."""

from __future__ import annotations

from resources.cordial import CordialResource
from resources.provider import Provider

PROVIDER = Provider(name="cordial", resource=CordialResource)
