"""The API's documentation pages (Swagger UI at `/docs`, ReDoc at `/redoc`), with their
scripts and styles shipped in the package."""
