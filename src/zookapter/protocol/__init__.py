"""ZooKeeper's client wire protocol: jute codec, records, opcodes and error codes."""
