"""Datasets: the registry and its loaders (``registry``), the in-memory form and its fingerprint
(``dataset``), the seeded splits (``splits``) and the batches a training reads (``batches``)."""
