"""zookapter.storage (not implemented yet)."""
