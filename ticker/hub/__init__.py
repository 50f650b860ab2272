"""The broadcaster: the book and news ring behind every connection, throttle windows and the
writes to each socket."""
