"""zookapter.recipes (not implemented yet)."""
