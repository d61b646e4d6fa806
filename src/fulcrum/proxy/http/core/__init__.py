"""The sans-I/O core of the HTTP/1.1 proxy: states.py (the transition tables), connection.py
(one client connection, one request's walk top to bottom), server.py (a server connection's
parser and the idle pool), exchange.py (one request), actions.py (what the shell is asked to do).
No asyncio, no sockets, no clock: the shells (proxy/http/server.py, upstream.py) feeds events and the time."""
