"""Fan-in: feeds under supervision (restarts, stalls, quarantine), the bus they publish into (in
memory, or Redis Streams across processes), and the discovery of feed plug-ins."""
