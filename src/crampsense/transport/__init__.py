"""Transport layer: the only place that imports bleak.

* :mod:`~crampsense.transport.base`: :class:`~crampsense.transport.base.Transport`, the one
  seam every radio implements (scan, find, client), and ``FoundDevice``.
* :mod:`~crampsense.transport.ble`: ``BleTransport``, the transport over bleak with its
  backends passed in (the platform's stack, the simulators' world, or bumble), and the Device
  Information reader.
* :mod:`~crampsense.transport.ingest`: ``IngestSession``, one device connected and streaming
  all night into a frame sink (reconnect with back-off, watchdog, pairing, control messages).
"""
