"""The network face: the aiohttp app and its routes, the upgraded WebSocket connection, access
control, connection admission and the publish API."""
