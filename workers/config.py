"""Celery configuration: the app factory, the queue of each job kind, and the broker errors and retries.

Shared by the API's publisher (:class:`workers.dispatch.CeleryDispatcher`) and the worker processes
(:mod:`workers.celery_app`).
"""

from __future__ import annotations

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Celery

from service.operations.kinds import LANES, JobKind, Lane
from service.settings import Settings
from workers import beat

DEFAULT_QUEUE = "default"
GPU_QUEUE = "gpu"
#: Suggestions a caller waits on: a worker serving this queue (``mixopt worker`` serves it with ``default``;
#: ``--queues interactive`` dedicates one) is never busy with a refit when one arrives.
INTERACTIVE_QUEUE = "interactive"
#: Errors publishing a message: the broker is down or unreachable.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError)
#: A short publish retry, so that an API call facing a dead broker answers within seconds.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}
#: Errors worth retrying: the database or broker connection dropped, a deadlock, a timeout.
TRANSIENT: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, TimeoutError)
#: Retries of a delivery that could not even reach the database to take its lease (~1 h with backoff);
#: past them the job is still ``queued`` and the sweep republishes it.
LEASE_RETRIES = 20


def queue_for(kind: JobKind, settings: Settings) -> str:
    if kind in settings.gpu_kind_set:
        return GPU_QUEUE
    return INTERACTIVE_QUEUE if LANES[kind] is Lane.interactive else DEFAULT_QUEUE


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (the API builds its own to publish; workers use ``app`` below)."""
    hard = float(settings.task_time_limit_s)
    visibility = settings.broker_visibility_timeout_s or hard + 300.0
    app = Celery("mixopt", broker=settings.broker_url, backend=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=hard,
        task_soft_time_limit=0.9 * hard,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_transport_options={"visibility_timeout": visibility, "socket_connect_timeout": 3},
        result_backend_transport_options={"visibility_timeout": visibility},
        redis_socket_connect_timeout=3,
        broker_connection_timeout=3,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule=beat.schedule(settings),
    )
    return app
