"""The Enroll tab: a new individual with its first photo (a write: the token when the service has one)."""
from __future__ import annotations

from typing import Optional

import gradio as gr
from PIL import Image

from ...errors import ReidHubError
from ..service import ReidService


def enroll_tab(svc: ReidService) -> None:
    """Enroll a named individual from one photo."""

    def enroll(img: Optional[Image.Image], name: str, species: str, token: str):
        if img is None or not name.strip():
            return "Give an image and a name."
        try:
            svc.authorize(token)
            iid, image_id = svc.enroll_new(name.strip(), species.strip(), img.convert("RGB"), "ui")
        except ReidHubError as exc:
            return f"**Error:** {exc}"
        return f"Enrolled **{name}** as `{iid}` (image {image_id})."

    with gr.Tab("Enroll"):
        e_img = gr.Image(type="pil", label="Image of the individual", elem_id="enroll-image")
        e_name = gr.Textbox(label="Name", elem_id="enroll-name")
        e_species = gr.Textbox(label="Species")
        e_token = gr.Textbox(label="Token (required when the service has one)", type="password")
        e_btn = gr.Button("Enroll", variant="primary", elem_id="enroll-button")
        e_out = gr.Markdown(elem_id="enroll-result")
        e_btn.click(enroll, [e_img, e_name, e_species, e_token], e_out)


__all__ = ["enroll_tab"]
