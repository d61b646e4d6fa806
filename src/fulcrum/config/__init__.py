"""The one configuration model, and the loaders that produce it."""

from fulcrum.config.errors import ConfigError
from fulcrum.config.model import Config, HealthCheck, Pool, Server, Service, Sticky

__all__ = ["Config", "ConfigError", "HealthCheck", "Pool", "Server", "Service", "Sticky"]
