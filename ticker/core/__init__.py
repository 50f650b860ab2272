"""The pure core: events and the feed API, the book, conflation, the wire protocol and framing,
validation, access rules and limits. Nothing here does I/O or imports asyncio, aiohttp or pandas
(tests/test_imports.py); everything takes ``now`` and returns values."""
