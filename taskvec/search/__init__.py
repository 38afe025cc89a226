"""Searching task-vector sites: the driver (:mod:`.driver`), the shared objective
(:mod:`.common`) and one module per method (:mod:`.reinforce`, :mod:`.cma`, :mod:`.grs`).

The names of the methods and rewards live here, free of heavy imports, so the CLI can offer
them as choices without loading the search."""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["reinforce", "cma", "grs"]
METHODS: tuple[str, ...] = get_args(Method)
RewardName = Literal["auto", "metric", "mse", "changed"]
REWARDS: tuple[str, ...] = get_args(RewardName)
