"""The command line (``crampsense``): the only place that prints or configures logging.

:mod:`~crampsense.cli.main` is the group and the entry point; each command is one module with a
click command named ``run`` (``demo``, ``scan``, ``pair``, ``devices``, ``record``, ``replay``,
``summary``, ``log``, ``analyze``, ``evaluate``), imported only when it runs.
:mod:`~crampsense.cli.utils` holds what they share; :mod:`~crampsense.cli.simulated` is the one
module that reaches the firmware simulators (``--simulate`` and ``demo``).
"""
