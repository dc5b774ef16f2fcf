"""Local web pages: the pairwise user study (docs/method.md §8) and an enhance page.

- `pages`: what both share (templates, static files, the server).
- `study`: the study's design, vote store, analysis, charts and app.
- `serve`: the enhance page's job queue and app.

Needs the `web` extra (`pip install -e '.[web]'`): Starlette, uvicorn, Jinja2, matplotlib.
"""
