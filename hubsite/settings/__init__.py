"""Settings, split by environment: base (shared), dev (embedded defaults), test, prod."""
