"""The cell registry: built-in cells by name, ``register_cell``, ``"module:factory"`` and entry points.

A cell is any ``torch.nn.Module`` built by a factory ``(input_size, hidden_size, **kw)`` whose
``forward`` maps (B, L, input_size) to (B, L, hidden_size), batch first, from a zero state (see
:mod:`memtasks.models.cells`). A factory that also takes a ``length`` argument is given the number of model
steps (the feed-forward ``mlp`` needs it). Cells are found, in order, by

1. a registered name: the built-ins, :func:`register_cell`, and third-party packages that declare an
   entry point in the ``memtasks.cells`` group (``name = "package.module:factory"``);
2. a ``"module:factory"`` reference, imported on use (``--cell mylab.cells:make_cell``).

:func:`check_cell` runs a cell once on a tiny batch before training, so a cell that returns the wrong
shape fails with a clear message instead of deep inside the training loop.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import torch
from torch import nn

from memtasks.errors import MemtasksError
from memtasks.models.cells import BUILTIN_CELLS
from memtasks.models.kernels import KERNELS, Kernel

#: Package entry-point group through which third-party packages add cells.
CELL_PLUGIN_GROUP = "memtasks.cells"


class CellError(MemtasksError, ValueError):
    """A cell is unknown, cannot be imported or built, or breaks the cell contract."""


@dataclass(frozen=True)
class CellSpec:
    """A named cell factory. ``source`` says where it came from: builtin, registered, a module
    reference or an entry point. ``kernel`` is the cell's batched recurrence (:mod:`memtasks.models.kernels`),
    which trains K models of it as one; a cell without one trains its trials one at a time."""

    name: str
    factory: Callable[..., nn.Module]
    description: str = ""
    source: str = "registered"
    kernel: Kernel | None = None

    @property
    def takes_length(self) -> bool:
        """Whether the factory accepts ``length`` (the number of model steps)."""
        try:
            return "length" in inspect.signature(self.factory).parameters
        except (TypeError, ValueError):
            return False

    def build(self, input_size: int, hidden_size: int, length: int, **kwargs: Any) -> nn.Module:
        """Call the factory; errors from a factory become one :class:`CellError` line."""
        if self.takes_length:
            kwargs = {"length": length, **kwargs}
        try:
            cell = self.factory(input_size, hidden_size, **kwargs)
        except TypeError as exc:
            raise CellError(f"cell {self.name!r} could not be built with input_size={input_size}, "
                            f"hidden_size={hidden_size}, kwargs {kwargs}: {exc}") from None
        if not isinstance(cell, nn.Module):
            raise CellError(f"cell factory {self.name!r} returned {type(cell).__name__}, "
                            "not a torch.nn.Module")
        return cell


_cells: dict[str, CellSpec] = {}
_plugins_loaded = False


def register_cell(name: str, factory: Callable[..., nn.Module], description: str = "", *,
                  override: bool = False, source: str = "registered", kernel: Kernel | None = None) -> CellSpec:
    """Register ``factory`` under ``name`` so ``--cell name`` and ``fit(..., cell=name)`` find it.

    ``kernel``: its batched form (see :mod:`memtasks.models.kernels` for the contract; the tests check a kernel
    against its factory's module). The kernel belongs to the registration: replacing a built-in cell with
    ``override=True`` and no kernel trains the new factory, never the old kernel."""
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise CellError(f"malformed cell name {name!r}; use a short name without ':' or spaces, e.g. 'mygru'")
    if not callable(factory):
        raise CellError(f"cell {name!r}: factory must be callable, got {type(factory).__name__}")
    if name in _cells and not override:
        raise CellError(f"cell {name!r} is already registered ({_cells[name].source}); "
                        "pass override=True to replace it")
    if kernel is not None and not callable(kernel):
        raise CellError(f"cell {name!r}: kernel must be callable, got {type(kernel).__name__}")
    spec = CellSpec(name=name, factory=factory, description=description, source=source, kernel=kernel)
    _cells[name] = spec
    return spec


def _load_plugins() -> None:
    """Register cells declared in the ``memtasks.cells`` entry-point group (once, on first lookup)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=CELL_PLUGIN_GROUP):
        if ep.name in _cells:
            continue
        _cells[ep.name] = CellSpec(name=ep.name, factory=_LazyFactory(ep.value), description=f"from {ep.value}",
                                   source=f"entry point {ep.value}")


class _LazyFactory:
    """A ``module:factory`` reference imported on first call (entry points must not slow down import)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        return _import_factory(self.ref)(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(_import_factory(self.ref))


def _import_factory(ref: str) -> Callable[..., nn.Module]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise CellError(f"malformed cell reference {ref!r}; use 'package.module:factory'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module, reported in one line
        raise CellError(f"cell {ref!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CellError(f"cell {ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CellError(f"cell {ref!r}: {attr!r} is a {type(obj).__name__}, not a callable factory")
    return obj


def cells() -> dict[str, CellSpec]:
    """Every registered cell by name (built-ins first, then registered and entry-point cells)."""
    _load_plugins()
    return dict(_cells)


def cell_spec(name: str) -> CellSpec:
    """Find a cell by registered name or ``"module:factory"`` reference."""
    if not isinstance(name, str) or not name.strip():
        raise CellError(f"cell must be a name or 'module:factory', got {name!r}")
    _load_plugins()
    if name in _cells:
        return _cells[name]
    if ":" in name:
        return CellSpec(name=name, factory=_import_factory(name), source="module reference")
    close = difflib.get_close_matches(name, list(_cells), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise CellError(f"unknown cell {name!r}.{hint} Known cells: {', '.join(_cells)}; "
                    "or give 'package.module:factory'")


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_cell(cell: nn.Module, name: str, input_size: int, hidden_size: int, length: int) -> None:
    """Run ``cell`` on a tiny batch and check it keeps the contract (shape, dtype, finite values)."""
    device = next((p.device for p in cell.parameters()), torch.device("cpu"))
    x = torch.randn(2, length, input_size, device=device)
    want = (2, length, hidden_size)
    try:
        with torch.no_grad():
            y = cell(x)
    except Exception as exc:  # noqa: BLE001 - a broken user cell is reported in one line
        raise CellError(f"cell {name!r} failed on an input of shape {tuple(x.shape)} "
                        f"({type(exc).__name__}: {exc})") from None
    if isinstance(y, tuple):
        raise CellError(f"cell {name!r} returned a tuple; forward must return only the output tensor of "
                        f"shape (batch, length, hidden) = {want} (wrap nn.LSTM-like modules and drop the state)")
    if not isinstance(y, torch.Tensor):
        raise CellError(f"cell {name!r} returned {type(y).__name__}; forward must return a tensor of shape {want}")
    if tuple(y.shape) != want:
        raise CellError(f"cell {name!r} returned shape {tuple(y.shape)} for input {tuple(x.shape)}; expected "
                        f"(batch, length, hidden) = {want} (batch first, one output per step)")
    if not y.is_floating_point():
        raise CellError(f"cell {name!r} returned dtype {y.dtype}; expected a floating-point tensor")
    if not count_params(cell):
        raise CellError(f"cell {name!r} has no trainable parameters")


def _register_builtins() -> None:
    for name, (factory, description) in BUILTIN_CELLS.items():
        register_cell(name, factory, description, source="builtin", kernel=KERNELS[name])


_register_builtins()
