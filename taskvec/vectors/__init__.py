"""Task vectors: mean activations (:mod:`.activations`), patch sites (:mod:`.sites`), the
vector file (:mod:`.taskvector`), prompting with or without a vector (:mod:`.prompting`) and
the collect/search commands as functions (:mod:`.pipeline`)."""
