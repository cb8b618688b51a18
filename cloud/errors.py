"""Typed errors of the cloud.

One root, :class:`CloudError`. Services and repositories raise these; the API maps each class to
one HTTP status and a problem+json body in a single handler (``cloud.api.problems``), so no route
raises ``HTTPException`` and nobody branches on message text. Messages never contain personal
data: they name the kind of resource and its opaque id, never a name or an ID number.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "CloudError",
    "ConfigError",
    "ConflictError",
    "CryptoError",
    "InvalidRequestError",
    "NotFoundError",
    "PurposeRequiredError",
]


class CloudError(Exception):
    """Root of every error raised by :mod:`cloud`."""

    code: str = "cloud-error"


class ConfigError(CloudError):
    """The settings are unusable (a missing or example secret outside dev mode, a bad key)."""

    code = "config-error"

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class CryptoError(CloudError):
    """A ciphertext could not be decrypted: unknown key id, wrong context or tampered bytes."""

    code = "crypto-error"

    def __init__(self, problem: str, key_id: str | None = None) -> None:
        self.problem = problem
        self.key_id = key_id
        super().__init__(problem if key_id is None else f"{problem} (key {key_id!r})")


class NotFoundError(CloudError):
    """No such resource, or one the caller may not know exists (access rules answer 404 there)."""

    code = "not-found"

    def __init__(self, resource: str, resource_id: object) -> None:
        self.resource = resource
        self.resource_id = str(resource_id)
        super().__init__(f"{resource} {self.resource_id} not found")


class ConflictError(CloudError):
    """The request contradicts stored state (a duplicate key, a second active contract)."""

    code = "conflict"

    def __init__(self, resource: str, reason: str) -> None:
        self.resource = resource
        self.reason = reason
        super().__init__(f"{resource}: {reason}")


class InvalidRequestError(CloudError):
    """A well-formed request that the domain rejects (a doctor of another clinic, a bad slot)."""

    code = "invalid-request"

    def __init__(self, field: str, reason: str, location: str = "body") -> None:
        self.field = field
        self.reason = reason
        self.location = location  # "body", "header", "query" or "path"
        super().__init__(f"{field}: {reason}")


class AuthenticationError(CloudError):
    """No valid credentials: a bad password, an expired or forged token, a disabled account."""

    code = "unauthenticated"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class AccessDeniedError(CloudError):
    """Authenticated, but the role or scope does not allow this action."""

    code = "forbidden"

    def __init__(self, action: str, resource: str) -> None:
        self.action = action
        self.resource = resource
        super().__init__(f"not allowed to {action} {resource}")


class PurposeRequiredError(AccessDeniedError):
    """An operator reads health data without stating a purpose (break-glass access)."""

    code = "purpose-required"

    def __init__(self, resource: str) -> None:
        super().__init__("read", resource)
        self.args = (f"operators must state a purpose (X-Anjia-Purpose header) to read {resource}",)
