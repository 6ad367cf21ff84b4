"""zookapter: Apache ZooKeeper rebuilt in Python: a wire-compatible server and an asyncio client."""

__version__ = "0.1.0"
