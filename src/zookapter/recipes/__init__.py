"""Recipes on the zookapter client: locks, elections, barriers, queues, counters, caches,
configuration and service discovery.

Each recipe is an asyncio class taking an `AsyncZooKeeper`; its blocking twin (same name in
`zookapter.recipes.sync`) takes a `ZooKeeperClient`. See docs/recipes.md for the znode layouts
and which ones interoperate with kazoo's recipes.
"""
