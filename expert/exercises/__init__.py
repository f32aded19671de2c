"""Learn by doing: exercises cut from the lessons, checked fast with the patterns' own invariants.

- `catalog`: every exercise, as data (`exercises/info.toml`), and its status for this learner.
- `verdict`: what a check concludes, in the pattern's voice (`expect`, `CheckFailedError`).
- `context`: what a check gets (a hidden seed, a fresh workdir, the shared engines).
- `learner`: loading the learner's file and calling their function, with file:line on trouble.
- `worker` / `runner`: checks run in a worker process the CLI can time out and replace; the
  worker keeps one warm Spark session across checks (watch mode, `check --all`).
- `progress`: what passed, saved in the working tree (git-ignored).
- `commands`: `expert exercises | check | hint | reset | watch | progress`.
- `capstone`: the capstone's requirements, checked from a manifest of the learner's artifacts.
"""
