"""The pooling proxy: the ASGI app, its access guard and its metrics."""
