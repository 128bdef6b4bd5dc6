"""PoolClient: pick a key, send (httpx on aiohttp), classify, report, rotate, wait, back off, fall back."""
