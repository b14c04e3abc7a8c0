"""Studies: the experiments of the papers memtasks builds on, each a set of sweeps and the figures, data and
README that answer one question.

- :mod:`~memtasks.studies.registry`: what a study is (:class:`~memtasks.studies.registry.Study`) and the studies
  by name;
- :mod:`~memtasks.studies.common`: running a study's sweeps, its files (results, CSV, ``study.json``, the README
  from its template under ``templates/``);
- :mod:`~memtasks.studies.capacity`: bits stored per parameter (Collins et al. 2017, per-parameter capacity);
- :mod:`~memtasks.studies.per_unit`: real numbers recalled per hidden unit (Collins et al. 2017, per-unit
  capacity) on ``DelayedRecall-Real-v0``;
- :mod:`~memtasks.studies.noise`: structured data against X- and Y-noise, curves and fitting time (Maharaj et al.
  2017; Arpit et al. 2017);
- :mod:`~memtasks.studies.rnn_vs_mlp`: recurrent cells against the causal MLP on random labels (Maharaj et al.);
- :mod:`~memtasks.studies.difficulty`: per-example difficulty across seeds (Arpit et al.; Maharaj et al.);
- :mod:`~memtasks.studies.connectivity`: how strongly each output depends on each input step (Madsen 2019),
  for a model in memory or one saved by ``memtasks run --save-model``;
- :mod:`~memtasks.studies.connectivity_study`: the study that trains every cell and draws that connectivity.

Every study is resumable (its sweeps skip finished points), runs on the local pool or Ray, takes ``scale`` for
bigger machines, and regenerates its outputs byte for byte from its committed ``results.jsonl``.
"""
