"""The Groups tab: review a discovered individual at once (its images numbered, the nearest groups lettered beside
it). Keyboard: number keys select images, c confirm, x take out the selected images, m merge with the chosen
group, u undo."""
from __future__ import annotations

import io
from typing import Any, Optional

import gradio as gr
from PIL import Image

from ...errors import ConfigError, ReidHubError
from ..service import ReidService
from .widgets import action_buttons, token_row


def groups_tab(svc: ReidService, visible: bool) -> None:
    """Show the served discovery's best group question and record what the person decides."""

    def show(note: str = ""):
        try:
            got = svc.discovery_group_questions(1)
        except ReidHubError as exc:
            return None, f"**{type(exc).__name__}:** {exc}", None, gr.update(choices=[], value=[]), \
                gr.update(choices=[], value=None)
        head = f"{got['individuals']} individuals so far, {got['answers']} pair answers."
        if not got["questions"]:
            return None, f"{note}No group left to review. {head}", None, gr.update(choices=[], value=[]), \
                gr.update(choices=[], value=None)
        q = got["questions"][0]
        beside = [nb["rows"][0] for nb in q["neighbours"]]
        pic = Image.open(io.BytesIO(svc.discovery_grid(q["rows"], beside)))
        numbers = [str(k + 1) for k in range(len(q["rows"]))]
        letters = [f"{chr(65 + k)}: {nb['individual']} (P(same) {nb['p_same']:.2f})"
                   for k, nb in enumerate(q["neighbours"])]
        text = (f"{note}**Is {q['individual']} one animal?** {len(q['rows'])} of its {q['size']} images are "
                f"numbered; the nearest other groups are lettered below them (the ones you do not merge are recorded "
                f"as other animals).  \n"
                f"Keys: **1-9, 0** select images that are not this animal, **c** confirm all as one animal, "
                f"**x** take out the selected images, **m** merge with the chosen group, **u** undo.  \n{head}")
        return pic, text, q, gr.update(choices=numbers, value=[]), \
            gr.update(choices=letters, value=letters[0] if letters else None)

    def act(q: Optional[dict[str, Any]], action: str, selected: list[str], neighbour: Optional[str], token: str):
        try:
            actor = svc.authorize(token)
            if action == "undo":
                out = svc.discovery_answer(0, 0, "undo", actor)
            elif q is None:
                return show()
            else:
                taken = [q["rows"][int(k) - 1] for k in selected or []]
                beside = [nb["rows"][0] for nb in q["neighbours"]]
                merge = []
                if action == "merge":
                    if not neighbour:
                        raise ConfigError("choose the group to merge with")
                    merge = [beside[ord(neighbour[0]) - 65]]
                if action == "take_out" and not taken:
                    raise ConfigError("select the images that are not this animal first (number keys)")
                out = svc.discovery_group_answer(q["rows"], taken if action == "take_out" else [], merge, actor,
                                                 [r for r in beside if r not in merge])
        except ReidHubError as exc:
            return show(f"**{type(exc).__name__}:** {exc}  \n")
        return show(f"Done: **{action.replace('_', ' ')}**, {out['individuals']} individuals now.  \n")

    with gr.Tab("Groups", visible=visible, elem_id="groups-tab"):
        g_q = gr.State(None)
        g_token, g_load = token_row("groups", "Next group", "g-load")
        g_info = gr.Markdown(elem_id="groups-info")
        g_pic = gr.Image(label="The group's images (numbered) and the nearest groups (lettered)", interactive=False,
                         elem_id="groups-picture")
        g_select = gr.CheckboxGroup(label="Not this animal (keys 1-9, 0)", choices=[], elem_id="g-select")
        g_beside = gr.Radio(label="Merge with", choices=[], elem_id="g-beside")
        buttons = action_buttons("g", (("confirm", "Confirm (c)"), ("take_out", "Take out (x)"), ("merge", "Merge (m)"),
                                       ("undo", "Undo (u)")), primary="confirm")
        outs = [g_pic, g_info, g_q, g_select, g_beside]
        g_load.click(show, [], outs)
        for action, btn in buttons.items():
            btn.click(lambda q, sel, nb, t, _a=action: act(q, _a, sel, nb, t), [g_q, g_select, g_beside, g_token],
                      outs)


__all__ = ["groups_tab"]
