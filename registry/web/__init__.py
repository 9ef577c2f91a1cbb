"""The hub's web pages: server-rendered views over the registry services (see docs/web.md)."""
