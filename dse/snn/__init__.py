"""The SNN: its layer-graph format (``network``), the export of a trained network to it (``export``), the
closed-form and event-driven simulators (``closed_form``, ``events``) and the spike statistics hwmodel
prices (``statistics``)."""
