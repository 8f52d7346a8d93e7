"""The Langfuse configuration: the one reader of the LANGFUSE_* environment in slm-swap.

`LangfuseConfig.from_env(env)` reads the variables once, from the mapping it is given (the CLI passes
`os.environ`). Reading never fails; each use checks what it needs, with the same rules and messages:

* `tracing()`: the project to trace to, or None when LANGFUSE_DISABLED=1; refuses a missing key or host,
  a LANGFUSE_DISABLED other than 1/0/unset, and an SDK switch that would make the SDK drop every span.
* `project(...)`: the project alone (reading or writing a dataset), whatever LANGFUSE_DISABLED says.

Both strip surrounding whitespace, count an empty value as unset, and accept only an http(s) host.
Neither key appears in a `repr()` or an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slm_swap.errors import ConfigError
from slm_swap.urls import shown

ENV_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
ENV_SECRET_KEY = "LANGFUSE_SECRET_KEY"
ENV_HOST = "LANGFUSE_HOST"
ENV_DISABLED = "LANGFUSE_DISABLED"
ENV_ENVIRONMENT = "LANGFUSE_TRACING_ENVIRONMENT"
REQUIRED = (ENV_PUBLIC_KEY, ENV_SECRET_KEY, ENV_HOST)
# The SDK reads these from os.environ itself; either one makes it drop every span silently.
SDK_OFF_SWITCHES = (("LANGFUSE_TRACING_ENABLED", "false"), ("OTEL_SDK_DISABLED", "true"))
WITHOUT_TRACING = f"set {ENV_DISABLED}=1 to run without tracing"


@dataclass(frozen=True)
class LangfuseSettings:
    """A Langfuse project, checked: where and as whom to send. Neither key appears in `repr()`."""

    public_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    host: str
    environment: str = "default"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LangfuseSettings | None:
        """The tracing settings `env` asks for: `LangfuseConfig.from_env(env).tracing()`."""
        return LangfuseConfig.from_env(env).tracing()


@dataclass(frozen=True)
class LangfuseConfig:
    """The LANGFUSE_* variables as read (stripped; the host without a trailing slash; "" when unset).

    `disabled` is LANGFUSE_DISABLED as given; `sdk_off` the first SDK switch that is set to drop every
    span, as `NAME=value`, or None.
    """

    public_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    host: str = ""
    environment: str = "default"
    disabled: str = ""
    sdk_off: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LangfuseConfig:
        """Reads the variables from `env`; never raises."""

        def value(name: str) -> str:
            return env.get(name, "").strip()

        drop_all = (f"{name}={off}" for name, off in SDK_OFF_SWITCHES if value(name).lower() == off)
        return cls(
            public_key=value(ENV_PUBLIC_KEY),
            secret_key=value(ENV_SECRET_KEY),
            host=value(ENV_HOST).rstrip("/"),
            environment=value(ENV_ENVIRONMENT) or "default",
            disabled=value(ENV_DISABLED),
            sdk_off=next(drop_all, None),
        )

    @property
    def off(self) -> bool:
        """LANGFUSE_DISABLED=1: run without tracing."""
        return self.disabled == "1"

    @property
    def missing(self) -> list[str]:
        """The names of the required variables that are unset or empty."""
        given = {ENV_PUBLIC_KEY: self.public_key, ENV_SECRET_KEY: self.secret_key, ENV_HOST: self.host}
        return [name for name in REQUIRED if not given[name]]

    def project(self, purpose: str, otherwise: str) -> LangfuseSettings:
        """The project the variables name. `purpose` opens the message when some are missing ("<purpose>,
        but X is not set"), `otherwise` ends its fix ("set it<otherwise>").

        Raises `ConfigError` when a required variable is missing (naming each missing one, and no other)
        or when LANGFUSE_HOST is not an http(s) URL.
        """
        if missing := self.missing:
            one = len(missing) == 1
            raise ConfigError(
                f"{purpose}, but {', '.join(missing)} {'is' if one else 'are'} not set\n"
                f"  fix: set {'it' if one else 'them'}{otherwise}"
            )
        if not self.host.startswith(("http://", "https://")):
            raise ConfigError(
                f"{ENV_HOST} must be an http(s) URL such as https://cloud.langfuse.com; "
                f"got {shown(self.host)!r}"
            )
        return LangfuseSettings(self.public_key, self.secret_key, self.host, self.environment)

    def tracing(self) -> LangfuseSettings | None:
        """The project to trace to; None when LANGFUSE_DISABLED=1.

        Raises `ConfigError` as `project()` does (the fix offers LANGFUSE_DISABLED=1), when
        LANGFUSE_DISABLED is neither 1, 0 nor unset, or when an SDK switch (LANGFUSE_TRACING_ENABLED=false,
        OTEL_SDK_DISABLED=true) would make the SDK drop everything.
        """
        if self.off:
            return None
        if self.disabled not in ("", "0"):
            raise ConfigError(
                f"{ENV_DISABLED} must be 1 (run without tracing) or unset; got {self.disabled!r}"
            )
        settings = self.project("Langfuse tracing is required for this command", f", or {WITHOUT_TRACING}")
        if self.sdk_off:
            raise ConfigError(
                f"{self.sdk_off} makes the Langfuse SDK drop every trace\n"
                f"  fix: unset it, or {WITHOUT_TRACING}"
            )
        return settings
