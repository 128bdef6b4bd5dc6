"""Where things are kept: config (TOML, comments kept), secrets, SQLite history, paths, atomic writes and
locks, the proxy admin token, Hermes files."""
