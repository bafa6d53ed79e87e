"""The application layer: `service` (the ReidService facade, the one door: model, gallery and its lock, limits,
auth, rate limits, one method per action), `api` (the FastAPI application: errors, schema) with `routes` (one router
per resource, each route a thin call of the service), `clips` (the one clip flow of the API, the UI and the CLI),
`ui` (the Gradio UI mounted on the API, one module per tab; `main` serves both), `jobs` (long work as jobs kept in
SQLite), `sessions` (private session galleries of a public demo) and `demo` (the demo video and the demo gallery).
"""
