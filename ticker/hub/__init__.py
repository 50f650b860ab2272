"""The broadcaster: the book and news ring behind every connection, throttle windows and the
writes to each socket.

Pure parts (no I/O; they take ``now`` and return values): ``session`` (one connection's requests
and rate limit), ``flow`` (its flow control: live, held, paused), ``news`` (the retained news and
its ids), ``windows`` (connections, throttle windows and groups). I/O shells around them:
``broadcaster`` (the ``Hub``: ingest, timers, the per-window fan-out), ``delivery`` (writes to one
connection, slow consumers), ``closing``."""
