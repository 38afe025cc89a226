"""The ``taskvec`` command (:mod:`.main`; collect/search/evaluate/figure in :mod:`.taskvectors`).

Kept import-free so ``python -m taskvec.cli`` (what torchrun launches) sets its environment
in :mod:`.main` before anything heavy is imported."""
