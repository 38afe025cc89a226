"""Data and tasks: the task registry and canvases (:mod:`.tasks`), images from folders and
dataset layouts (:mod:`.images`), bounded decoding (:mod:`.imageio`), named image sets
(:mod:`.imagesets`), procedural scenes (:mod:`.scenes`) and the fetched image bank
(:mod:`.fetch`, :mod:`.bank`)."""
