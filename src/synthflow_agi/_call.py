"""Plain values that cross between the core and its edges."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Tuple

from ._status import Status
from ._wire import script_arguments


@dataclasses.dataclass(frozen=True)
class CallInfo:
    """What the AGI environment block tells about the call, read once."""

    uniqueid: str
    technology: str
    caller_number: str
    arguments: Tuple[str, ...]
    # Where the AGI runs: after an agent's transfer the channel has moved elsewhere.
    context: str = ""
    extension: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CallInfo":
        """Read the call from ``agi_*`` environment lines."""
        return cls(
            uniqueid=env.get("agi_uniqueid", ""),
            technology=env.get("agi_type", ""),
            caller_number=env.get("agi_callerid", ""),
            arguments=script_arguments(env),
            context=env.get("agi_context", ""),
            extension=env.get("agi_extension", ""),
        )


@dataclasses.dataclass(frozen=True)
class PrepareRequest:
    """The body of one prepare_inbound call."""

    from_number: str
    to_number: str
    model_id: str
    workspace_id: str
    custom_variables: Mapping[str, str]

    def body(self) -> dict:
        """Return the JSON body exactly as Synthflow documents it."""
        return {
            "from_number": self.from_number,
            "to_number": self.to_number,
            "model_id": self.model_id,
            "workspace_id": self.workspace_id,
            "custom_variables": dict(self.custom_variables),
        }


@dataclasses.dataclass(frozen=True)
class PreparedCall:
    """A registered call: its id and the whole answer, for the CLI to show."""

    call_id: str
    answer: Mapping[str, Any]


@dataclasses.dataclass
class Outcome:
    """What one hand-off ended with; published to the channel and the log."""

    status: Status = Status.API_ERROR
    call_id: str = ""
    error: str = ""
    target: str = ""
    mode: str = ""
    linkedid: str = ""
    api_ms: Optional[float] = None
    total_ms: float = 0.0
    # Dial arguments of a prepared call whose Dial another process will run (classic AGI).
    pending_dial: str = ""
    # SYNTHFLOW_CALL_ID and SYNTHFLOW_TARGET were set before the Dial began, for the
    # dialplan to see during the call; afterwards only the status and error follow.
    ids_published: bool = False
    # The API failed on Synthflow's side and the call went to the agent without S. (on_api_failure=direct).
    degraded: bool = False
    # Dial mode: the agent REFERred the caller on ("warm 0875704225...", "cold +1...").
    agent_transfer: str = ""
