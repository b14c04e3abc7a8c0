"""The cell registry: names, register_cell, module:factory references, entry points, the shape check."""

from __future__ import annotations

import sys

import pytest
import torch

import memtasks
from memtasks.fitting.protocol import Protocol
from memtasks.fitting.trainer import fit
from memtasks.models import registry as cell_registry
from memtasks.models.registry import CellError, cell_spec, cells, check_cell, register_cell
from tests.plugin_cells import elman


@pytest.fixture
def clean_cells(monkeypatch):
    """Let a test register cells; the registry and the entry-point scan are restored afterwards."""
    monkeypatch.setattr(cell_registry, "_cells", dict(cell_registry._cells))
    monkeypatch.setattr(cell_registry, "_plugins_loaded", cell_registry._plugins_loaded)
    return cell_registry._cells



def install_plugin(tmp_path, monkeypatch, dist_name: str, entry_point: str) -> None:
    """Make an installed distribution named ``dist_name`` that declares ``entry_point`` in ``memtasks.cells``,
    visible to ``importlib.metadata`` through ``sys.path``, and make the registry look for plugins again."""
    dist = tmp_path / f"{dist_name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[memtasks.cells]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cell_registry, "_plugins_loaded", False)

def test_builtins_are_registered_in_order():
    assert list(cells())[:8] == ["rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"]
    assert all(c.source == "builtin" and c.description for c in list(cells().values())[:8])


def test_unknown_names_get_suggestions():
    with pytest.raises(CellError, match=r"unknown cell 'gur'\. Did you mean 'gru'"):
        cell_spec("gur")
    with pytest.raises(CellError, match="Known cells: rnn, irnn, lstm"):
        cell_spec("transformer")
    with pytest.raises(CellError, match="malformed cell reference"):
        cell_spec("tests.plugin_cells:")


def test_register_cell_and_train_it(clean_cells):
    register_cell("my-elman", elman, "an Elman RNN")
    assert cell_spec("my-elman").source == "registered"
    with pytest.raises(CellError, match="already registered"):
        register_cell("my-elman", elman)
    register_cell("my-elman", elman, "replaced", override=True)
    assert cell_spec("my-elman").description == "replaced"
    with pytest.raises(CellError, match="malformed cell name"):
        register_cell("a:b", elman)
    with pytest.raises(CellError, match="factory must be callable"):
        register_cell("x", 3)  # type: ignore[arg-type]
    task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=4, n_examples=16, n_test=4)
    assert fit(task, "my-elman", hidden=4, protocol=Protocol(max_steps=1)).cell["name"] == "my-elman"


def test_entry_point_cells_load_without_editing_memtasks(clean_cells, tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "mylab-cells", "labrnn = tests.plugin_cells:elman")
    spec = cell_spec("labrnn")
    assert spec.source == "entry point tests.plugin_cells:elman"
    cell = spec.build(3, 5, 7)
    assert cell(torch.zeros(2, 7, 3)).shape == (2, 7, 5)
    assert "labrnn" in cells()


def test_check_cell_catches_contract_breaks():
    from tests.plugin_cells import raw_lstm, wrong_shape

    check_cell(elman(3, 4), "ok", 3, 4, 5)
    with pytest.raises(CellError, match=r"returned shape \(2, 5, 5\).*expected \(batch, length, hidden\)"):
        check_cell(wrong_shape(3, 4), "w", 3, 4, 5)
    with pytest.raises(CellError, match="returned a tuple"):
        check_cell(raw_lstm(3, 4), "t", 3, 4, 5)

    class IntCell(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.zeros(x.shape[0], x.shape[1], 4, dtype=torch.long)

    with pytest.raises(CellError, match="dtype torch.int64"):
        check_cell(IntCell(), "i", 3, 4, 5)


def test_lazy_factories_import_only_when_used(clean_cells, tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "lazy-cells", "broken = tests.broken_cell_module:make")
    assert "broken" in cells()  # listing does not import it
    assert "tests.broken_cell_module" not in sys.modules
    with pytest.raises(CellError, match="broken on purpose"):
        cell_spec("broken").build(3, 4, 5)
