"""The local web app (`gitrun ui`), MLflow's read-only REST API and self-contained reports.

server.py assembles the ASGI app: MLflow's REST endpoints (rest.py), the page's own JSON
endpoints (views.py) and the static files (static/, the vendored chart library in
static/vendor/). Nothing here writes to the repository.
"""
