"""Local fake upstreams (HTTP feed server, WebSocket replayers) for the upstream adapter tests."""
