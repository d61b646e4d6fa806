"""What the core asks its shell to do, in order, after each event.

The core never touches a socket. After every call the shell writes `ClientCore.to_client` to
the client and each `ServerSide.out` in `ClientCore.dirty` to its server, then carries out
`ClientCore.actions` in order: tuples whose first item is one of these names."""

CONNECT = "connect"  # (CONNECT, exchange, backend, owner): open a server connection for it
RETRY_CONNECT = "retry-connect"  # (RETRY_CONNECT, exchange, seconds): call retry_connect then
CANCEL_CONNECT = "cancel-connect"  # (CANCEL_CONNECT, handle): the exchange's `pending` connect is not wanted
CLOSE_SERVER = "close-server"  # (CLOSE_SERVER, side, abort): close (abort: reset) it
PAUSE_SERVER = "pause-server"  # (PAUSE_SERVER, side): stop reading it (the client is slow)
RESUME_SERVER = "resume-server"  # (RESUME_SERVER, side)
EOF_SERVER = "eof-server"  # (EOF_SERVER, side): half-close towards the server (tunnel)
PAUSE_CLIENT = "pause-client"  # (PAUSE_CLIENT,): stop reading the client
RESUME_CLIENT = "resume-client"  # (RESUME_CLIENT,)
EOF_CLIENT = "eof-client"  # (EOF_CLIENT,): half-close towards the client (tunnel)
CLOSE_CLIENT = "close-client"  # (CLOSE_CLIENT, abort): close the client connection, last
