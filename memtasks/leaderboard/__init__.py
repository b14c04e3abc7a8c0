"""The leaderboard: a versioned suite, its submissions, their checks and the published page.

- :mod:`~memtasks.leaderboard.suite`: the versioned suites (``core-v0``) and ``run_suite``;
- :mod:`~memtasks.leaderboard.scores`: per-setting and overall scores from a submission's runs;
- :mod:`~memtasks.leaderboard.submission`: bundling a suite run into a submission; reading files safely;
- :mod:`~memtasks.leaderboard.validate`: every check that needs no model;
- :mod:`~memtasks.leaderboard.verify`: re-measuring every model from its safetensors weights;
- :mod:`~memtasks.leaderboard.site`: ``leaderboard/README.md`` and the self-contained ``index.html``.

See ``docs/leaderboard.md``.
"""
