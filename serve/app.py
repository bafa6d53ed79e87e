"""The Hugging Face Space entry point: the reid-hub web app (REST API + Gradio UI at /ui).

Locally: `reid-hub serve` runs the same app. `make space` assembles this file with the package into build/space/.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for root in (HERE, HERE.parent):  # the package copied beside app.py (a Space), or the checkout above serve/
    if (root / "reid_hub").is_dir():
        sys.path.insert(0, str(root))
        break

from reid_hub.app.ui import create_app, main  # noqa: E402

__all__ = ["create_app", "main"]

if __name__ == "__main__":
    main()
