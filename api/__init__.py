"""FastAPI: the data API for developers, and later the driver and union-operator views."""
