"""The web app: the REST API with the Gradio UI mounted at /ui, built from one module per tab (`search_tab`:
Search and My photos, `enroll_tab`, `clip_tab`, `review_tab`, `questions_tab`: pair questions, `groups_tab`: a
whole discovered individual reviewed at once, `population_tab`: abundance with the identification's uncertainty),
`texts` (what a result means, in words) and `widgets` (what the tabs share); every tab acts through the
ReidService's methods. `reid-hub serve` and the Space's app.py run `main`.

In a Space (SPACE_ID set) it listens on 0.0.0.0:7860; elsewhere on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from ...models.loading import DEFAULT_MODEL, from_pretrained
from ..api import create_api
from ..demo import build_demo_gallery, demo_store_dir
from ..service import ReidService, ServiceConfig
from .clip_tab import clip_tab
from .enroll_tab import enroll_tab
from .groups_tab import groups_tab
from .population_tab import population_tab
from .questions_tab import questions_tab
from .review_tab import review_tab
from .search_tab import photos_tab, search_tab
from .texts import header_text

log = logging.getLogger(__name__)


def build_ui(svc: ReidService) -> gr.Blocks:
    """The Gradio Blocks UI: identify by image (verified, calibrated, with evidence), a private gallery, enroll,
    clip -> persistent IDs, review, pair questions and group review."""
    writable = svc.cfg.token is not None or not svc.cfg.public  # a public service without a token is read-only
    with gr.Blocks(title="reid-hub: who is this animal?") as ui:
        header = gr.Markdown(header_text(svc), elem_id="header")
        ui.load(lambda: header_text(svc), [], header)  # live counts: recomputed on every page load
        search_tab(svc)
        photos_tab(svc)
        enroll_tab(svc)
        clip_tab(svc)
        review_tab(svc, writable)
        questions_tab(svc, writable and svc.cfg.discovery_dir is not None)
        groups_tab(svc, writable and svc.cfg.discovery_dir is not None)
        population_tab(svc, writable and svc.cfg.discovery_dir is not None)
    return ui


#: answering from the keyboard (never while typing): pair questions s same, d different, k skip, u undo; group
#: review 1-9 and 0 select images, c confirm, x take out, m merge, u undo. A key acts on the visible tab's button.
KEYBOARD = """<script>
document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable))) return;
  const seen = (el) => el && el.offsetParent !== null;
  if (/^[0-9]$/.test(e.key)) {
    const box = document.querySelectorAll("#g-select input[type=checkbox]")[e.key === "0" ? 9 : Number(e.key) - 1];
    if (seen(box)) { e.preventDefault(); box.click(); }
    return;
  }
  const ids = {s: ["q-same"], d: ["q-different"], k: ["q-skip"], u: ["q-undo", "g-undo"], c: ["g-confirm"],
               x: ["g-take-out"], m: ["g-merge"]}[e.key.toLowerCase()] || [];
  const btn = ids.map((id) => document.getElementById(id)).find(seen);
  if (!btn) return;
  e.preventDefault();
  btn.click();
});
</script>"""


def create_app(cfg: ServiceConfig, model: Any = None):
    """FastAPI app with the REST API and the Gradio UI at /ui (/ redirects there)."""
    from fastapi.responses import RedirectResponse

    api = create_api(cfg, model)
    svc = api.state.service

    @api.get("/", include_in_schema=False)
    def root():
        return RedirectResponse("/ui")

    examples = Path(cfg.gallery_dir) / "examples"  # the demo's example queries: the browser must be able to show them
    return gr.mount_gradio_app(api, build_ui(svc), path="/ui", root_path="/ui", head=KEYBOARD,
                               allowed_paths=[str(examples)] if examples.is_dir() else None)


def main(argv: Optional[list[str]] = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=os.environ.get("REID_HUB_MODEL", DEFAULT_MODEL))
    ap.add_argument("--gallery", default=os.environ.get("REID_HUB_GALLERY", str(demo_store_dir())),
                    help="gallery folder (default: the demo gallery, built on first start)")
    ap.add_argument("--host", default="0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    ap.add_argument("--token", default=os.environ.get("REID_HUB_TOKEN"))
    ap.add_argument("--discovery", default=os.environ.get("REID_HUB_DISCOVERY"),
                    help="an output folder of reid-hub discover: its pair questions are served (Questions tab)")
    ap.add_argument("--public", action="store_true", help="exposed to anyone: without --token the shared gallery "
                    "is read-only (always so in a Space, where SPACE_ID is set)")
    args = ap.parse_args(argv)
    model = from_pretrained(args.model)
    if Path(args.gallery).resolve() == demo_store_dir().resolve():  # a user's own gallery starts empty: never seeded with demo data
        build_demo_gallery(model, args.gallery).close()
    public = bool(os.environ.get("SPACE_ID")) or args.public
    app = create_app(ServiceConfig(model=args.model, gallery_dir=args.gallery, token=args.token, public=public,
                                      discovery_dir=args.discovery), model)
    print(f"reid-hub serving on http://{args.host}:{args.port}/ui (API docs at /docs)", flush=True)  # the user's line
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
