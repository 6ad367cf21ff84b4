"""zookapter.quorum (not implemented yet)."""
