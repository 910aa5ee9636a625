"""The flows that join the layers, along the data flow.

* :mod:`~crampsense.pipeline.record`: devices -> one session file (pairing, recording a night).
* :mod:`~crampsense.pipeline.replay`: session -> decoded timelines -> leg signals -> detector ->
  :class:`~crampsense.models.Night`.
* :mod:`~crampsense.pipeline.legs`: which recorded stream feeds which leg.
* :mod:`~crampsense.pipeline.files`: EDF/BDF and CSV/Parquet sample files -> leg signals,
  with channel mapping.
* :mod:`~crampsense.pipeline.resend`: recorded frames delivered again into a sink.

Nothing is imported here, so importing one flow does not load the others.
"""
