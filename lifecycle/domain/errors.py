"""Named domain errors. Each carries a stable ``code``; the edges map codes to dead
letters, exit codes and HTTP statuses, each in one place."""

from __future__ import annotations


class LifecycleError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "lifecycle_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class RejectedTouchpoint(LifecycleError):
    """An upstream message that breaks Contract 1. ``code`` names the rule it broke."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class InvalidPolicy(LifecycleError):
    code = "invalid_policy"


class InvalidStageChange(LifecycleError):
    code = "invalid_stage_change"


class InvalidAccountManager(LifecycleError):
    code = "invalid_account_manager"


class RelationshipNotFound(LifecycleError):
    code = "relationship_not_found"


class PersonalDataAlreadyErased(LifecycleError):
    code = "personal_data_already_erased"


class PolicyNotAdoptable(LifecycleError):
    """A policy that cannot be adopted: its version is not newer than the adopted one,
    or it was adopted before with other text."""

    code = "policy_not_adoptable"


class PolicyMismatch(LifecycleError):
    """A process was started with a policy file other than the adopted policy."""

    code = "policy_mismatch"
