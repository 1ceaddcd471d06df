"""The application layer: what the service does, whoever asks (a route, a Celery task, the CLI).

Each operation takes the store (and, where it queues work, a :class:`~service.operations.dispatch.Dispatcher`)
and raises the typed errors of :mod:`service.errors`; none knows about HTTP or Celery.
"""
