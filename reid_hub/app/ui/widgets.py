"""Small pieces the tabs share: who is asking, the visitor's session, the token row."""
from __future__ import annotations

from typing import Optional, Sequence

import gradio as gr


def client(request: Optional[gr.Request]) -> str:
    """The client address of a UI request (for the rate limit)."""
    return getattr(getattr(request, "client", None), "host", None) or "ui"


def session_of(request: Optional[gr.Request]) -> str:
    """The browser session of a UI request (a visitor's private gallery)."""
    return str(getattr(request, "session_hash", "") or "")


def token_row(prefix: str, load_label: str, load_id: str) -> tuple[gr.Textbox, gr.Button]:
    """A row with the token box (`<prefix>-token`) and the button that loads the next item to decide."""
    with gr.Row():
        token = gr.Textbox(label="Token (required when the service has one)", type="password",
                           elem_id=f"{prefix}-token")
        load = gr.Button(load_label, elem_id=load_id)
    return token, load


def action_buttons(prefix: str, labels: Sequence[tuple[str, str]], primary: str) -> dict[str, gr.Button]:
    """A row of buttons, one per (action, label), with element ids `<prefix>-<action>` (underscores as dashes: the
    keyboard script clicks them) and `primary` highlighted."""
    with gr.Row():
        return {a: gr.Button(label, elem_id=f"{prefix}-{a.replace('_', '-')}",
                             variant="primary" if a == primary else "secondary") for a, label in labels}


__all__ = ["action_buttons", "client", "session_of", "token_row"]
