"""fulcrum: a high-availability TCP/HTTP load balancer."""

__version__ = "0.1.0"
