"""Local web pages: the pairwise user study (docs/method.md §8) and an enhance page.

Needs the `web` extra (`pip install -e '.[web]'`): Starlette, uvicorn, Jinja2, matplotlib.
"""
