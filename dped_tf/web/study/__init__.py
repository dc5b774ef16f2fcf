"""The paper's pairwise user study (docs/method.md §8) as a local web app.

- `design`: class folders -> scenes and experiments; each rater's shuffled plan.
- `store`: the votes in SQLite, each committed before the server answers.
- `analysis`: per-pair fractions with t intervals, shares of all choices, Bradley-Terry.
- `charts`: the Figure-10-style bars (matplotlib).
- `app`: the Starlette pages a rater clicks through.
"""
