"""WhiteNoise (static files) as a middleware that can run in an async chain.

WhiteNoise's own middleware is sync-only. Under daphne one sync-only middleware makes Django run the whole chain
below it in sync mode: the request enters asgiref's single thread for sync code and holds it until the view has
answered, async views included (they are awaited from that thread). So no two requests of a process were ever in
their views at once, and an async view that waits (the command waiting for its group commit, a read-your-writes
query waiting for the projector) held every other request up. This subclass keeps WhiteNoise's behaviour and
serves a static file exactly as it does, but in an async chain it awaits the next middleware instead of blocking
a thread on it; the sync middlewares below still run their sync parts on that one thread, one hop each.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self.in_async_chain = iscoroutinefunction(get_response)
        if self.in_async_chain:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.in_async_chain:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:  # development: look on disk (I/O), off the event loop
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)  # the files found at start-up: a dict lookup
        if static_file is not None:
            # Opening the file and reading its headers is I/O: a worker thread, not the event loop.
            response: HttpResponseBase = await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
            return response
        response = await self.get_response(request)
        return response
