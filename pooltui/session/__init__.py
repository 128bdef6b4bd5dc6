"""What the monitor and the proxy drive: the local and attached sessions, the panel views, building
clients from the config, the history recorder, test traffic, background re-verification."""
