"""Searching task-vector sites: the driver (:mod:`.driver`), the shared objective
(:mod:`.common`) and one module per method (:mod:`.reinforce`, :mod:`.cma`, :mod:`.grs`)."""
