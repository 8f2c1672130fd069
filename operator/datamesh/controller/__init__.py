"""The operator: kopf handlers (thin), one reconciler per concern, the in-memory indexes,
the work queue, provisioning plans, status, settings and metrics. Imports ``api`` and
``governance``; never ``meshctl``."""
