"""The application layer: `service` (the ReidService facade: model, gallery, lock, limits, auth, rate limits;
and the REST API), `clips` (the one clip flow of the API, the UI and the CLI), `ui` (the Gradio UI mounted on the
API; `main` serves both), `jobs` (long work as jobs kept in SQLite), `sessions` (private session galleries of a
public demo) and `demo` (the demo video and the demo gallery).
"""
