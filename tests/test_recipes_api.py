"""The recipes' public surface: `zookapter.recipes` (asyncio) and `zookapter.recipes.sync`
(blocking, same names)."""

from __future__ import annotations

import asyncio

import zookapter.recipes as recipes
import zookapter.recipes.sync as sync_recipes
from zookapter.client import AsyncZooKeeper, ZooKeeperClient
from zookapter.testing import ZookapterServer


def test_every_async_recipe_has_a_blocking_twin_under_the_same_name() -> None:
    for name in recipes.__all__:
        if name.startswith("Sync"):
            plain = name[4:]
            assert getattr(sync_recipes, plain) is getattr(recipes, name), plain


def test_lock_from_both_namespaces_on_one_path() -> None:
    with ZookapterServer() as server:
        client = ZooKeeperClient(server.hosts)
        client.start()
        try:
            with sync_recipes.Lock(client, "/locks/x", identifier="blocking") as first:
                assert isinstance(first, int)

            async def take() -> int:
                async with AsyncZooKeeper(server.hosts) as zk:
                    async with recipes.Lock(zk, "/locks/x", identifier="async") as token:
                        return token
            second = asyncio.run(take())
            assert second > first, "fencing tokens grow with every acquisition"
        finally:
            client.close()
