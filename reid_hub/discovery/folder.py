"""A discovery folder opened for answering: its grouping and answers from `snapshot.npz`, without the table, the
embeddings or the model, so that `reid-hub questions` starts in well under two seconds."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .answers import AnswerLog
from .state import GroupState


def open_answers(folder: str | Path) -> GroupState:
    """The grouping of a discovery folder with its answers applied. Folders without a snapshot (written before
    it), or that send their individuals to a gallery (whose review decisions come back as answers), are opened
    whole with `run.open_discovery`."""
    out = Path(folder)
    state = out / "state.json"
    if not state.is_file():
        raise DataError(f"{folder}: not a discovery folder (no state.json); run reid-hub discover first")
    try:
        gallery = json.loads(state.read_text()).get("gallery")
    except ValueError as exc:
        raise DataError(f"{state}: not readable JSON ({exc})") from exc
    if not (out / "snapshot.npz").is_file() or gallery:
        from .run import open_discovery

        return open_discovery(folder)
    return GroupState.load(out / "snapshot.npz", AnswerLog(out / "answers.sqlite"))


__all__ = ["open_answers"]
