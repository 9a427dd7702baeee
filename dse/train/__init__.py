"""Training: the spec (``spec``), the loop with its resumable state (``loop``), checkpoints (``checkpoint``), the
exact measurement of a trained network (``evaluate``), the whole run of one network (``pipeline``:
``train_and_evaluate``) and ``dse train`` / ``dse evaluate`` (``cli``)."""
