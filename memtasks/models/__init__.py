"""Models: the cells, the cell registry and the sequence model that wraps a cell.

- :mod:`~memtasks.models.cells`: the built-in cells and their parameter formulas;
- :mod:`~memtasks.models.registry`: cells by name, ``"module:factory"`` or entry point, and the cell contract;
- :mod:`~memtasks.models.sequence_model`: ``SequenceModel`` (shared encoder ▶ cell ▶ readout, a
  LightningModule) and the hidden size that matches a parameter budget.

Everything here imports torch; ``import memtasks`` loads it only on first use.
"""
