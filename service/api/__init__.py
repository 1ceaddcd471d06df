"""The web layer: the FastAPI app factory, its routers, middleware and the one mapping of errors to HTTP.

A route parses and authorises the request, calls one operation of :mod:`service.operations`, and presents
its result.
"""
