"""Campaign settings and task payloads as pydantic models: written as JSON, read back by
the same class, so what a submit stores is exactly what a task later reads.

The size defaults live once, in `harvester.imaging.SizeRules`; every provider's settings
extend `CampaignSettings` and validate sizes the same way. A payload that does not fit
its model is a `BadPayload`: permanent (retrying cannot fix it), naming the field.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harvester.errors import HarvesterError, InputError
from harvester.imaging import SizeRules

DEFAULT_SIZES = SizeRules()
M = TypeVar("M", bound=BaseModel)


class BadPayload(HarvesterError):
    """A task's payload or its campaign's settings do not fit their model."""

    reason = "bad_payload"


class StoredModel(BaseModel):
    """Frozen; unknown keys (written by a newer version) are ignored on reading."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def stored(self) -> dict[str, Any]:
        """The JSON document kept in the database."""
        return self.model_dump(mode="json")


class CampaignSettings(StoredModel):
    """What every campaign says about its stored images."""

    max_side: int = Field(DEFAULT_SIZES.max_side, ge=1)
    min_side: int = Field(DEFAULT_SIZES.min_side, ge=1)
    quality: int = Field(DEFAULT_SIZES.quality, ge=1, le=100)

    @model_validator(mode="after")
    def _min_side_at_most_max_side(self) -> Self:
        if self.min_side > self.max_side:
            raise ValueError(f"min_side {self.min_side} is above max_side {self.max_side}")
        return self

    def size_rules(self) -> SizeRules:
        return SizeRules(max_side=self.max_side, min_side=self.min_side, quality=self.quality)


def check_sizes(max_side: int, min_side: int) -> None:
    """The operator's --max-side/--min-side, checked as every campaign checks them."""
    if not 1 <= min_side <= max_side:
        raise InputError(f"need 1 <= --min-side <= --max-side, got {min_side} and {max_side}")


def read_stored(model: type[M], document: Any, what: str) -> M:
    """A stored document read back through its model, or BadPayload naming the field."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise BadPayload(f"{what}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    problems = exc.errors(include_url=False, include_input=False)
    shown = [f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in problems]
    more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
    return f"{shown[0]}{more}" if shown else str(exc)
