"""Evaluation: metrics (:mod:`.metrics`), method comparison (:mod:`.evaluate`) and the
comparison figure (:mod:`.figure`)."""
