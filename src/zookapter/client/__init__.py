"""zookapter.client (not implemented yet)."""
