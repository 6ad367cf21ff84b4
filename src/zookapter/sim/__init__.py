"""zookapter.sim (not implemented yet)."""
