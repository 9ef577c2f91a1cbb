"""Business operations of the registry (upload, download, lifecycle...), one module each.

Import the modules directly (``from registry.services import upload``); nothing is
re-exported here so that importing one service never imports the others.
"""
