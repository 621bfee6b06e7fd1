"""Resumable uploads (tus 1.0.0): service, routes and header helpers.

The client that `seau upload` uses is `seau.cli.client_tus` (HTTP only).

Only the service-level names are exported here; the routes module imports the
HTTP layer and is included by `seau.app`.
"""

from seau.uploads.service import UploadLimits, UploadService, UploadStatus

__all__ = ["UploadLimits", "UploadService", "UploadStatus"]
