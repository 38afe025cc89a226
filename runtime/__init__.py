"""Runtime: video sources and sinks, backends, predictors and the live loop (``tvrun``)."""
