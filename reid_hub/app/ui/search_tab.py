"""The Search tab (identify a photo in the shared gallery, with its evidence) and the My photos tab (a visitor's
private session gallery)."""
from __future__ import annotations

from typing import Optional

import gradio as gr
from PIL import Image

from ...errors import ReidHubError
from ..demo import demo_examples
from ..service import ReidService
from .texts import verdict_text
from .widgets import client, session_of


def search_tab(svc: ReidService) -> None:
    """Identify an uploaded photo: the verdict, the top matches and the best match's evidence."""

    def search(img: Optional[Image.Image], k: float, species: str, request: gr.Request = None):
        if img is None:
            return [], "Upload a query image first.", None
        query = img.convert("RGB")
        try:
            svc.limiter.check(client(request))
            res = svc.identify(query, k=int(k), species=species.strip() or None)
        except ReidHubError as exc:
            return [], f"**Error:** {exc}", None
        items = []
        for m in res["matches"]:
            t = svc.thumbnail(m["image_id"])
            if t is not None:
                p = "" if m["probability"] is None else f"P={m['probability']:.2f}, "
                items.append((t, f"{m['display_name']} ({p}score {m['global_score']:.3f})"))
        top = res["matches"][0] if res["matches"] else None
        verdict = verdict_text(res)
        if not res["calibrated"]:
            verdict += " _(the gallery is not calibrated yet: global score only; recalibrate to get probabilities)_"
        table = "\n".join(
            f"| {i + 1} | {m['display_name']} | `{m['individual_id']}` | {m['species']} | {m['global_score']:.3f} | "
            f"{'-' if m['local_score'] is None else int(m['local_score'])} | "
            f"{'-' if m['probability'] is None else format(m['probability'], '.2f')} |"
            for i, m in enumerate(res["matches"]))
        picture = None
        if top and top["matcher"]:
            try:
                picture = svc.evidence_image(query, top["image_id"])
            except ReidHubError:
                picture = None
        return items, (f"{verdict}\n\n| rank | name | id | species | score | verified matches | P(same) |\n"
                       f"|---|---|---|---|---|---|---|\n{table}"), picture

    with gr.Tab("Search"):
        with gr.Row():
            q = gr.Image(type="pil", label="Query image", elem_id="query-image")
            with gr.Column():
                k = gr.Slider(1, 20, value=5, step=1, label="Individuals to show")
                sp = gr.Textbox(label="Species (optional: search only this species)")
                go = gr.Button("Search", variant="primary", elem_id="search-button")
        examples = demo_examples(svc.cfg.gallery_dir)
        if examples:
            gr.Examples([[str(p)] for p in examples], inputs=[q], label="Examples: click one, then Search "
                        "(the last animal is not in the gallery)", examples_per_page=8, elem_id="examples")
        verdict = gr.Markdown(elem_id="search-verdict")
        results = gr.Gallery(label="Top matches", columns=5, height="auto", elem_id="search-results")
        evidence = gr.Image(label="Evidence: verified keypoint matches with the best candidate",
                            elem_id="search-evidence", interactive=False)
        go.click(search, [q, k, sp], [results, verdict, evidence])


def photos_tab(svc: ReidService) -> None:
    """A visitor's own temporary gallery: enroll a few photos, search with another."""

    def my_enroll(img: Optional[Image.Image], name: str, request: gr.Request = None):
        """Enroll into the visitor's own temporary gallery (no token: nobody else sees it)."""
        if img is None or not name.strip():
            return "Give a photo and a name."
        try:
            got = svc.session_enroll(session_of(request), img.convert("RGB"), name.strip())
        except ReidHubError as exc:
            return f"**Error:** {exc}"
        n_ind, n_img = got["individuals"], got["images"]
        return (f"Added a photo of **{name.strip()}**. Your private gallery: {n_ind} individual(s), {n_img} photo(s) "
                f"(at most {svc.sessions.max_images}; removed after an hour of inactivity).")

    def my_search(img: Optional[Image.Image], request: gr.Request = None):
        if img is None:
            return "Upload a photo to search your gallery.", None
        try:
            svc.limiter.check(client(request))
            res, pic = svc.session_identify(session_of(request), img.convert("RGB"))
        except ReidHubError as exc:
            return f"**Error:** {exc}", None
        rows = "\n".join(f"| {m.display_name} | {m.global_score:.3f} | "
                         f"{'-' if m.probability is None else format(m.probability, '.2f')} |" for m in res.matches)
        return (f"**{res.decision}**" + ("" if res.probability is None else f", P(same) = {res.probability:.2f}")
                + f"\n\n| individual | score | P(same) |\n|---|---|---|\n{rows}"), pic

    with gr.Tab("My photos"):
        gr.Markdown("Your own private gallery for this browser session: enroll a few photos of an animal, "
                    "then search with another one. Nothing here reaches the shared gallery.")
        with gr.Row():
            m_img = gr.Image(type="pil", label="Photo", elem_id="my-image")
            with gr.Column():
                m_name = gr.Textbox(label="Name of this animal", elem_id="my-name")
                m_add = gr.Button("Add to my gallery", elem_id="my-add")
                m_find = gr.Button("Search my gallery", variant="primary", elem_id="my-search")
        m_out = gr.Markdown(elem_id="my-result")
        m_evidence = gr.Image(label="Evidence", interactive=False, elem_id="my-evidence")
        m_add.click(my_enroll, [m_img, m_name], m_out)
        m_find.click(my_search, [m_img], [m_out, m_evidence])


__all__ = ["search_tab", "photos_tab"]
