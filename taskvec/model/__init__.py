"""The model: MAE-VQGAN (:mod:`.mae_vqgan`), its VQGAN decoder (:mod:`.vqgan`), the
configuration registry (:mod:`.config`), weights on disk (:mod:`.checkpoint`) and training
of the embedded default (:mod:`.train`)."""
