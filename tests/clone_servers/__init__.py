"""Test backends written the way public random-chat clones are: their own event names,
their own transports (raw JSON WebSocket, Socket.IO), with fault flags for the oracle."""
