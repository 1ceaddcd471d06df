"""The web dashboard served by the API process at ``/dashboard`` (issue 7)."""

from service.api.dashboard.routes import router

__all__ = ["router"]
