"""The Population tab: how many animals the served discovery's camera-trap package shows, with and without the
identification's uncertainty, its capture history and discovery curve."""
from __future__ import annotations

import io

import gradio as gr
from PIL import Image

from ...errors import ReidHubError
from ..service import ReidService
from .widgets import token_row


def population_tab(svc: ReidService, visible: bool) -> None:
    """Estimate abundance from the served discovery and show the table and plots."""

    def run(occasion: str, by: str, draws: float, token: str):
        try:
            svc.authorize(token)
            body = svc.population(occasion.strip(), by, int(draws))
        except (ReidHubError, ValueError) as exc:
            return f"**{type(exc).__name__}:** {exc}", None, None, None
        unc = body["with_identification_uncertainty"]
        rows = [[e["method"], e["N"], e["lower"], e["upper"]] for e in body["estimates"]]
        rows.append([f"{unc['method']}, with identification uncertainty ({unc['draws']} draws)", unc["N"],
                     unc["lower"], unc["upper"]])
        pics = [Image.open(io.BytesIO(svc.population_plot(n))) for n in ("discovery_curve", "capture_history")]
        text = (f"**{body['individuals_seen']} individuals seen** over {body['occasions']} occasions of "
                f"{body['occasion']}. The last row carries the identification's own uncertainty: identities drawn "
                f"from the grouping's P(same), decided ones fixed.")
        return text, rows, pics[0], pics[1]

    with gr.Tab("Population", visible=visible, elem_id="population-tab"):
        token, go = token_row("population", "Estimate", "pop-run")
        with gr.Row():
            occasion = gr.Textbox(value="1d", label="Occasion (30m, 12h, 1d, 7d, 2w)", elem_id="pop-occasion")
            by = gr.Radio(["none", "deployment"], value="none", label="Also per deployment")
            draws = gr.Number(value=200, minimum=1, maximum=2000, precision=0, label="Identity draws")
        info = gr.Markdown(elem_id="population-info")
        table = gr.Dataframe(headers=["method", "N", "lower", "upper"], interactive=False, elem_id="pop-table")
        with gr.Row():
            curve = gr.Image(label="Discovery curve", interactive=False, elem_id="pop-curve")
            history = gr.Image(label="Capture history", interactive=False, elem_id="pop-history")
        go.click(run, [occasion, by, draws, token], [info, table, curve, history])


__all__ = ["population_tab"]
