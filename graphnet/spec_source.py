"""``load_spec(source)``: a spec from where the command line and the API name one.

A source is a Python file (its ``build(**build_kwargs)`` or ``net``), ``module:attr``, a JSON
file, ``torchvision:NAME`` or ``timm:NAME`` (random weights; timm is the extra ``graphnet[timm]``). A source that gives an ``nn.Module`` is traced by
``graphnet.trace.from_module``, so this module sits above the tracer (the spec language below
both knows nothing of either).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import SpecError
from .spec import from_json
from .trace import from_module


def load_spec(source: str | Path, **build_kwargs: Any) -> dict:
    """A spec from a Python file (its ``build(**build_kwargs)`` or ``net``), ``module:attr``, JSON,
    ``torchvision:NAME`` (the ``torchvision.models`` builder, random weights, ``build_kwargs`` such
    as ``num_classes`` passed on) or ``timm:NAME`` (``timm.create_model``, random weights, offline).
    A torchvision or timm network is traced on a random example input of its size (224x224 for
    torchvision, timm's ``input_size``), which gives the sizes where its ``forward`` reads shapes.

    A Python file runs as a script would, with its folder importable (a spec file may import
    its neighbours); a JSON file never executes code. Where the source gives an ``nn.Module``
    rather than a spec, ``graphnet.from_module`` traces it into one. Every failure is a
    SpecError naming the source (and, for code that raises, the file and line).
    """
    source = str(source)
    if source.startswith("torchvision:"):
        size = build_kwargs.get("image_size", 224)  # every torchvision classifier takes 224x224 (vit: its image_size)
        return _traced(_torchvision_model(source.partition(":")[2], build_kwargs), torch.randn(1, 3, size, size))
    if source.startswith("timm:"):
        model = _timm_model(source.partition(":")[2], build_kwargs)
        return _traced(model, torch.randn(1, *model.pretrained_cfg.get("input_size", (3, 224, 224))))
    if source.endswith(".json"):
        path = Path(source)
        if build_kwargs:
            raise SpecError(f"{source} is a JSON spec, which takes no build options "
                            f"({', '.join(sorted(build_kwargs))}): use a Python spec with build()")
        try:
            text = path.read_text()
        except IsADirectoryError:
            raise SpecError(f"spec {source} is a folder, not a JSON file") from None
        except FileNotFoundError:
            raise SpecError(f"no such spec file: {source}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"cannot read spec {source}: {e}") from None
        try:
            return from_json(text)
        except SpecError as e:
            raise type(e)(f"{source}: {e}") from None
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise SpecError(f"spec {source} is a folder, not a Python file" if path.is_dir()
                            else f"no such spec file: {source}")
        module_spec = importlib.util.spec_from_file_location(f"graphnet_spec_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)  # as for a script: a spec file imports its neighbours
        try:
            module_spec.loader.exec_module(module)
        except SpecError:
            raise
        except SyntaxError as e:
            raise SpecError(f"{e.filename or source}:{e.lineno}: syntax error: {e.msg}") from None
        except Exception as e:
            raise SpecError(f"{_where(e, path)}: {type(e).__name__}: {e}") from None
        finally:
            sys.path.remove(folder)
        return _traced(_spec_from(module, source, build_kwargs, path))
    if ":" in source:
        module_name, attr = source.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not (module_name == e.name or module_name.startswith(e.name + ".")):
                raise  # the module exists; something it imports is missing
            raise SpecError(f"spec {source!r}: no module named {e.name!r}") from None
        value = getattr(module, attr, None)
        if value is None:
            raise SpecError(f"module {module_name!r} has no attribute {attr!r}")
        if not callable(value) or isinstance(value, nn.Module):
            if build_kwargs:
                raise SpecError(f"{source} is not a function, so it takes no build options "
                                f"({', '.join(sorted(build_kwargs))})")
            return _traced(value)
        return _traced(_call_build(value, source, build_kwargs, None))
    raise SpecError(f"spec {source!r} is neither a .py file, a .json file, module:attr, torchvision:NAME nor timm:NAME")


def _traced(value: Any, example_input: torch.Tensor | None = None) -> Any:
    """``value``, or the spec that ``from_module`` traces from it (on ``example_input``, where shapes are
    read) if it is an ``nn.Module``."""
    if not isinstance(value, nn.Module):
        return value
    return from_module(value, example_input).to_spec()


def _torchvision_model(name: str, build_kwargs: dict) -> Any:
    """``torchvision.models.get_model(name, weights=None, **build_kwargs)``, its errors as one-line SpecErrors."""
    import torchvision

    if name not in torchvision.models.list_models():
        near = difflib.get_close_matches(name, torchvision.models.list_models(), n=3)
        raise SpecError(f"torchvision has no model {name!r}" + (f"; did you mean {', '.join(near)}?" if near else ""))
    try:
        return torchvision.models.get_model(name, weights=None, **build_kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(f"torchvision:{name} cannot take {build_kwargs}: {e}") from None


def _timm_model(name: str, build_kwargs: dict) -> Any:
    """``timm.create_model(name, pretrained=False, **build_kwargs)`` (offline), its errors as one-line SpecErrors."""
    try:
        import timm
    except ModuleNotFoundError:
        raise SpecError(f"timm:{name} needs timm: pip install 'graphnet[timm]'") from None
    if name not in timm.list_models():
        near = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise SpecError(f"timm has no model {name!r}" + (f"; did you mean {', '.join(near)}?" if near else ""))
    try:
        return timm.create_model(name, pretrained=False, **build_kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(f"timm:{name} cannot take {build_kwargs}: {e}") from None


def _where(error: BaseException, path: Path | None) -> str:
    """``file:line`` of the deepest traceback frame in ``path`` (else the deepest frame)."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    if path is not None:
        mine = [f for f in frames if Path(f[0]).resolve() == path.resolve()]
        frames = mine or frames
    return f"{frames[-1][0]}:{frames[-1][1]}" if frames else str(path)


def _call_build(build: Any, source: str, build_kwargs: dict, path: Path | None) -> dict:
    """``build(**build_kwargs)``; SpecError if it cannot take them or raises (its message and line)."""
    try:
        inspect.signature(build).bind(**build_kwargs)
    except TypeError as e:
        raise SpecError(f"{source}: build{inspect.signature(build)} cannot take {build_kwargs}: {e}") from None
    except ValueError:  # no signature to check (a builtin): the call says
        pass
    try:
        return build(**build_kwargs)
    except SpecError:
        raise
    except Exception as e:
        raise SpecError(f"{source}: build() raised {type(e).__name__}: {e} (at {_where(e, path)})") from None


def _spec_from(module: Any, source: str, build_kwargs: dict, path: Path) -> dict:
    if hasattr(module, "build"):
        return _call_build(module.build, source, build_kwargs, path)
    if build_kwargs:
        raise SpecError(f"{source} has no build() to take {sorted(build_kwargs)}")
    if hasattr(module, "net"):
        return module.net
    raise SpecError(f"{source} defines neither `net` nor `build()`")
