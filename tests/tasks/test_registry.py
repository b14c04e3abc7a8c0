"""The registry follows Gymnasium's id and version rules."""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest

import memtasks
from memtasks import (
    InvalidKwargError,
    OutdatedVersionWarning,
    RegistrationError,
    UnknownTaskError,
)
from memtasks.tasks.ids import parse_task_id


def test_all_sixteen_settings_registered():
    kinds = ("NextStep", "Seq2Seq", "Vec2Seq", "Seq2Vec")
    expected = {f"{k}-{i}{o}-v0" for k in kinds for i in ("Cat", "Real") for o in ("Cat", "Real")}
    assert expected == set(memtasks.SETTINGS)
    assert expected <= set(memtasks.registry)


@pytest.mark.parametrize(
    "task_id, parsed",
    [
        ("Seq2Vec-CatCat-v0", (None, "Seq2Vec-CatCat", 0)),
        ("my-lab/Copy-v12", ("my-lab", "Copy", 12)),
        ("Copy", (None, "Copy", None)),
    ],
)
def test_parse_task_id(task_id, parsed):
    assert parse_task_id(task_id) == parsed


@pytest.mark.parametrize("bad", ["", "a b", "ns/", "a/b/c"])
def test_malformed_id_is_rejected(bad):
    with pytest.raises(RegistrationError, match="malformed task id"):
        parse_task_id(bad)
    with pytest.raises(RegistrationError, match="malformed task id"):
        memtasks.register(bad, "pkg.module:Task")


class Echo:
    """A minimal third-party task: a plain class with explicit kwargs."""

    def __init__(self, size: int = 3, scale: float = 1.0):
        self.size, self.scale = size, scale


def test_make_merges_and_records_kwargs(clean_registry):
    defaults = {"size": 5, "scale": 2.0}
    memtasks.register("test/Echo-v0", Echo, kwargs=defaults)
    task = memtasks.make("test/Echo-v0", scale=3.0)
    assert (task.size, task.scale) == (5, 3.0)
    assert task.spec.kwargs == {"size": 5, "scale": 3.0}
    assert memtasks.spec("test/Echo-v0").kwargs == {"size": 5, "scale": 2.0}  # registry untouched
    defaults["size"] = 99  # the registry keeps its own copy
    assert memtasks.spec("test/Echo-v0").kwargs["size"] == 5


def test_grid_task_records_every_resolved_kwarg():
    task = memtasks.make("Seq2Seq-CatCat-v0", seq_len=7)
    assert task.spec.id == "Seq2Seq-CatCat-v0"
    assert task.spec.kwargs["seq_len"] == 7
    assert task.spec.kwargs["out_len"] == 7  # None resolved to seq_len, and recorded
    assert set(task.spec.kwargs) == set(task.params)


def test_unknown_kwarg_lists_valid_ones(clean_registry):
    with pytest.raises(InvalidKwargError, match=r"unknown kwarg sq_len; valid kwargs are seq_len, n_examples"):
        memtasks.make("Seq2Vec-CatCat-v0", sq_len=5)
    memtasks.register("test/Echo-v0", Echo)
    with pytest.raises(InvalidKwargError, match="valid kwargs are size, scale"):
        memtasks.make("test/Echo-v0", colour="red")


def test_unversioned_id_resolves_to_latest(clean_registry):
    memtasks.register("test/Echo-v0", Echo, kwargs={"size": 0})
    memtasks.register("test/Echo-v2", Echo, kwargs={"size": 2})
    assert memtasks.spec("test/Echo").id == "test/Echo-v2"
    assert memtasks.make("test/Echo").size == 2


def test_out_of_date_version_warns(clean_registry):
    memtasks.register("test/Echo-v0", Echo)
    memtasks.register("test/Echo-v1", Echo)
    with pytest.warns(OutdatedVersionWarning, match="test/Echo-v0 is out of date; the latest version is test/Echo-v1"):
        memtasks.make("test/Echo-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        memtasks.make("test/Echo-v1")  # the latest version does not warn


def test_missing_version_errors_with_the_versions_that_exist(clean_registry):
    memtasks.register("test/Echo-v1", Echo)
    memtasks.register("test/Echo-v2", Echo)
    with pytest.raises(UnknownTaskError,
                       match=r"has no version v7; registered versions: v1, v2 \(latest: test/Echo-v2\)"):
        memtasks.make("test/Echo-v7")
    with pytest.raises(UnknownTaskError, match="has no version v0"):
        memtasks.spec("test/Echo-v0")


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownTaskError, match=r"'Seq2Vec-CatCta' doesn't exist; did you mean 'Seq2Vec-CatCat'\?"):
        memtasks.make("Seq2Vec-CatCta-v0")


def test_unknown_namespace_suggests_close_match(clean_registry):
    memtasks.register("mylab/Echo-v0", Echo)
    with pytest.raises(UnknownTaskError, match=r"namespace 'mylb' not found; did you mean 'mylab'\?"):
        memtasks.make("mylb/Echo-v0")


def test_duplicate_and_mixed_version_registration_errors(clean_registry):
    memtasks.register("test/Echo-v0", Echo)
    with pytest.raises(RegistrationError, match="already registered"):
        memtasks.register("test/Echo-v0", Echo)
    memtasks.register("test/Echo-v0", Echo, kwargs={"size": 9}, override=True)
    assert memtasks.make("test/Echo-v0").size == 9
    with pytest.raises(RegistrationError, match="versioned ids of that name exist"):
        memtasks.register("test/Echo", Echo)
    memtasks.register("test/Plain", Echo)
    with pytest.raises(RegistrationError, match="the unversioned id test/Plain exists"):
        memtasks.register("test/Plain-v0", Echo)
    with pytest.raises(UnknownTaskError, match="registered without a version"):
        memtasks.spec("test/Plain-v3")


def test_bad_entry_points(clean_registry):
    with pytest.raises(RegistrationError, match="must look like 'package.module:Attribute'"):
        memtasks.register("test/Bad-v0", "no_colon_here")
    memtasks.register("test/Gone-v0", "memtasks_missing_module:Task")
    with pytest.raises(RegistrationError, match="could not be loaded"):
        memtasks.make("test/Gone-v0")


@pytest.fixture
def plugin_module(tmp_path, monkeypatch, clean_registry):
    """A third-party package on sys.path that registers a memtasks.Task subclass on import."""
    (tmp_path / "mt_plugin.py").write_text(textwrap.dedent('''
        import memtasks
        from memtasks.tasks.grid import Seq2VecCatCat

        class Shorter(Seq2VecCatCat):
            """A third-party variant with its own defaults."""

        memtasks.register("plug/Shorter-v0", "mt_plugin:Shorter", kwargs={"seq_len": 3})

        def register_more():
            memtasks.register("plug/Other-v0", "mt_plugin:Shorter")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mt_plugin"
    sys.modules.pop("mt_plugin", None)


def test_module_colon_id_imports_the_module_first(plugin_module):
    task = memtasks.make("mt_plugin:plug/Shorter-v0", n_examples=5, n_test=2)
    assert task.spec.id == "plug/Shorter-v0"
    assert task.train.x.shape == (5, 3)
    assert task.spec.entry_point == "mt_plugin:Shorter"
    with pytest.raises(UnknownTaskError, match="could not be imported"):
        memtasks.make("no_such_module_xyz:plug/Shorter-v0")


def test_plugins_register_through_entry_points(plugin_module, monkeypatch):
    from memtasks.tasks import registration

    class EP:
        def __init__(self, name, value, obj):
            self.name, self.value, self._obj = name, value, obj

        def load(self):
            if isinstance(self._obj, Exception):
                raise self._obj
            return self._obj

    import importlib

    module = importlib.import_module(plugin_module)
    eps = [EP("good", "mt_plugin:register_more", module.register_more),
           EP("broken", "broken_plugin", ImportError("no module named broken_plugin"))]
    monkeypatch.setattr(registration, "entry_points", lambda group: eps if group == "memtasks.tasks" else [])
    with pytest.warns(UserWarning, match="plugin 'broken'.*failed to load"):
        loaded = registration.load_plugins()
    assert loaded == ["good"]
    assert "plug/Other-v0" in memtasks.registry


def test_pprint_registry_groups_by_namespace(clean_registry):
    memtasks.register("zlab/Echo-v0", Echo)
    text = memtasks.pprint_registry(disable_print=True)
    assert "===== zlab =====\nzlab/Echo-v0" in text
    assert "Seq2Vec-CatCat-v0" in text
    assert "zlab" not in memtasks.pprint_registry(exclude_namespaces=["zlab"], disable_print=True)
