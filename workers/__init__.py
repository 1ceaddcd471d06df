"""Celery wiring for the operations of :mod:`service.operations`: configuration, the task adapter, the
Celery dispatcher, the beat schedule and the stale-work sweep. Registered as the ``celery`` job backend."""
