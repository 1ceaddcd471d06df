"""The web dashboard served by the API process at ``/dashboard`` (issue 7)."""

from service.dashboard.routes import router

__all__ = ["router"]
