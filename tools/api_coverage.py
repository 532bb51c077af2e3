"""Write ``docs/api-coverage.md`` from the primitive registry.

Usage::

    python tools/api_coverage.py            # (re)write docs/api-coverage.md
    python tools/api_coverage.py --check    # exit 1 if the file is stale
    python tools/api_coverage.py --stdout   # print the document

The document lists every registered primitive (after importing diffsys and its numeric and
model namespaces) with its family, its derivative rules (VJP per argument, JVP per argument
or one for all), its batching rule and whether it is zero-derivative; then the public
functions of ``diffsys.numpy`` and ``diffsys.scipy.*``, each marked as a primitive or a
composition (a Python function over primitives, with the primitives it calls directly).
Everything is sorted, so the output depends only on the code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api-coverage.md"

# Public namespaces whose functions are listed (primitive vs composition).
PUBLIC = (
    "diffsys.numpy",
    "diffsys.numpy.linalg",
    "diffsys.numpy.fft",
    "diffsys.numpy.random",
    "diffsys.scipy.special",
    "diffsys.scipy.stats",
    "diffsys.scipy.signal",
    "diffsys.scipy.integrate",
    "diffsys.scipy.linalg",
)

# Imported before reading the registry; a module that is missing is listed as such.
MODULES = ("diffsys", *PUBLIC, "diffsys.nn", "diffsys.relax", "diffsys.implicit")

# Layer order, lowest first: a primitive bound in several modules belongs to the lowest.
_LAYERS = ("core", "numpy", "scipy", "nn", "relax", "implicit", "optim", "train")


# Primitives whose derivatives are not (only) their rules: said in the doc column.
NOTES = {
    "checkpoint": "reverse mode recomputes the wrapped function (handled by ds.checkpoint, "
    "not by rules)",
    "scipy.integrate.odeint": "reverse mode: a custom_vjp around it (adjoint method, "
    "`scipy.integrate.odeint_adjoint`); forward mode: sensitivity equations",
    "scipy.integrate.odeint_adjoint": "the adjoint backward pass of odeint on plain values; "
    "under an outer transform the backward pass is an odeint call instead (any order)",
    "scipy.integrate.odeint_sensitivities": "forward sensitivities of odeint on plain values; "
    "under an outer transform they are an odeint call instead (any order)",
}

_VARIADIC = 1 << 20  # rule tuples this long are made on demand (any number of arguments)


def _import_all() -> tuple[list[str], list[str]]:
    # the checkout this script belongs to, before any installed copy
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    ok, missing = [], []
    for name in MODULES:
        try:
            importlib.import_module(name)
            ok.append(name)
        except Exception as e:  # noqa: BLE001 - listed in the document instead
            missing.append(f"{name} ({type(e).__name__})")
    return ok, missing


def _layer_key(module: str) -> tuple:
    parts = module.split(".")
    layer = parts[1] if len(parts) > 1 else ""
    rank = _LAYERS.index(layer) if layer in _LAYERS else len(_LAYERS)
    # within a layer, the defining (private, deeper) module before the package re-export
    return (rank, -len(parts), module)


def _defining_modules(Primitive) -> dict[int, str]:
    """Primitive id -> the diffsys module that defines it (best effort, deterministic)."""
    holders: dict[int, set[str]] = {}
    for mname, mod in sorted(sys.modules.items()):
        if not mname.startswith("diffsys") or not isinstance(mod, types.ModuleType):
            continue
        for value in list(vars(mod).values()):
            if isinstance(value, Primitive):
                holders.setdefault(id(value), set()).add(mname)
    out = {}
    for pid, mods in holders.items():
        out[pid] = sorted(mods, key=_layer_key)[0]
    return out


def _impl_module(prim) -> str | None:
    code = getattr(prim.impl, "__code__", None)
    mod = getattr(prim.impl, "__module__", None)
    if code is not None and isinstance(mod, str) and mod.startswith("diffsys"):
        return mod
    return None


def _family(prim, module: str | None) -> str:
    name = prim.name
    for prefix, fam in (
        ("linalg.", "numpy.linalg"),
        ("fft.", "numpy.fft"),
        ("scipy.", None),
        ("nn.", "nn"),
        ("relax.", "relax"),
    ):
        if name.startswith(prefix):
            return fam or ".".join(name.split(".")[:2])
    if module:
        parts = module.split(".")
        if len(parts) > 1:
            if parts[1] in ("numpy", "core"):
                return parts[1]
            return ".".join(p for p in parts[1:3] if not p.startswith("_")) or parts[1]
    return "other"


def _rules(prim) -> tuple[str, str, str, str]:
    if prim.zero_derivative:
        return "zero", "zero", "yes" if prim.batch_rule else "loop", "yes"
    if len(prim.vjps) >= _VARIADIC:
        vjps = None
    else:
        vjps = list(prim.vjps)
    if vjps is None:
        vjp = "all args (variadic)"
    elif not vjps:
        vjp = "no"
    elif all(r is not None for r in vjps):
        vjp = "all args" if len(vjps) > 1 else "yes"
    else:
        vjp = "args " + ",".join(str(i) for i, r in enumerate(vjps) if r is not None)
    if prim.jvp_all is not None:
        jvp = "all (joint rule)"
    else:
        jvps = list(prim.jvps)
        if not jvps:
            jvp = "no"
        elif all(r is not None for r in jvps):
            jvp = "all args" if len(jvps) > 1 else "yes"
        else:
            jvp = "args " + ",".join(str(i) for i, r in enumerate(jvps) if r is not None)
    batch = "yes" if prim.batch_rule is not None else "loop"
    return vjp, jvp, batch, "no"


def _first_line(doc: str | None) -> str:
    if not doc:
        return ""
    line = doc.strip().splitlines()[0].strip()
    return line.replace("|", "\\|")


def _code_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _called_primitives(fun, Primitive) -> list[str]:
    fun = inspect.unwrap(fun)
    code = getattr(fun, "__code__", None)
    if code is None:
        return []
    glb = getattr(fun, "__globals__", {})
    names = _code_names(code)
    # modules the body refers to (``dnp.sum``, ``_nla.solve_p``): their attributes count too
    mods = [
        glb[n]
        for n in sorted(names)
        if isinstance(glb.get(n), types.ModuleType) and glb[n].__name__.startswith("diffsys")
    ]
    found = set()
    for n in names:
        v = glb.get(n)
        if isinstance(v, Primitive):
            found.add(v.name)
            continue
        for m in mods:
            v = vars(m).get(n)
            if isinstance(v, Primitive):
                found.add(v.name)
    return sorted(found)


def _public_names(mod) -> list[str]:
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    return sorted(set(names))


def _describe_public(modname: str, Primitive) -> list[tuple[str, str, str]]:
    mod = sys.modules.get(modname)
    if mod is None:
        return []
    rows = []
    for name in _public_names(mod):
        obj = getattr(mod, name, None)
        if obj is None or isinstance(obj, types.ModuleType):
            continue
        if isinstance(obj, Primitive):
            rows.append((name, "primitive", f"`{obj.name}`"))
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj) or isinstance(obj, types.MethodType):
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith("diffsys"):
                rows.append((name, "NumPy/SciPy (values)", ""))
            else:
                prims = _called_primitives(obj, Primitive)
                rows.append((name, "composition", ", ".join(f"`{p}`" for p in prims)))
        elif inspect.isclass(obj):
            owner = getattr(obj, "__module__", "") or ""
            kind = "class" if owner.startswith("diffsys") else "NumPy type"
            rows.append((name, kind, ""))
        elif getattr(type(obj), "__module__", "").startswith("diffsys"):
            methods = sorted(
                m for m in dir(obj) if not m.startswith("_") and callable(getattr(obj, m))
            )
            for m in methods:
                prims = _called_primitives(getattr(obj, m), Primitive)
                rows.append((f"{name}.{m}", "composition", ", ".join(f"`{p}`" for p in prims)))
        elif callable(obj):
            rows.append((name, "callable", ""))
    return rows


def _gaps(prims) -> list[str]:
    """Known limits read off the rules: missing derivative rules and batching by a loop."""
    no_vjp, no_jvp, loop = [], [], []
    for p in prims:
        vjp, jvp, batch, _ = _rules(p)
        if vjp not in ("yes", "all args", "all args (variadic)", "zero"):
            no_vjp.append(f"`{p.name}` ({vjp})")
        if jvp not in ("yes", "all args", "all (joint rule)", "zero"):
            no_jvp.append(f"`{p.name}` ({jvp})")
        if batch == "loop":
            loop.append(f"`{p.name}`")
    out = ["## Known limits (from the rules)", ""]
    for title, items in (
        ("Reverse mode only for some arguments, or none (the others raise a clear error)", no_vjp),
        ("Forward mode only for some arguments, or none", no_jvp),
        ("Batched by the loop fallback (no batching rule of their own)", loop),
    ):
        out += [f"- {title}: " + (", ".join(items) if items else "none"), ""]
    return out


def render() -> str:
    """The document, as text (imports diffsys; deterministic)."""
    _, missing = _import_all()
    from diffsys.core.primitive import Primitive, registry

    prims = [registry[n] for n in sorted(registry)]
    where = _defining_modules(Primitive)
    lines = [
        "# API coverage",
        "",
        "<!-- Generated by tools/api_coverage.py from the primitive registry. Do not edit: run",
        "     `python tools/api_coverage.py` after changing primitives or public functions. -->",
        "",
        "Every differentiable operation in diffsys is a primitive with its own rules; public",
        "functions are primitives or compositions of them (whose derivatives follow from the",
        "primitives they call). Columns:",
        "",
        "- **VJP** / **JVP**: `yes` (the one argument), `all args`, `args i,j` (only those",
        "  positional arguments are differentiable), `all (joint rule)` (one JVP rule for every",
        "  argument), `no`, or `zero` for zero-derivative primitives (values only: their outputs",
        "  carry no derivative, as in autograd and JAX).",
        "- **batch**: `yes` = its own batching rule; `loop` = `vmap` falls back to a loop over",
        "  the batch (correct, slower).",
        "- **module**: where the primitive object is bound (best effort).",
        "- Public functions: `primitive` (the name is the primitive itself) or `composition`",
        "  (a Python function; its derivatives are those of the primitives it calls, listed",
        "  where referenced directly in its body); `NumPy/SciPy (values)` and `NumPy type` are",
        "  re-exports that produce plain values.",
        "",
        "Known limits are documented in each function's docstring and in the module guides",
        "(`docs/numpy-linalg-fft.md`, `docs/scipy.md`, the `diffsys.scipy.linalg` docstring).",
        "",
    ]
    if missing:
        lines += ["Modules that could not be imported: " + ", ".join(sorted(missing)), ""]
    by_family: dict[str, list] = {}
    for p in prims:
        mod = _impl_module(p) or where.get(id(p))
        by_family.setdefault(_family(p, mod), []).append((p, mod))
    counts = {k: len(v) for k, v in by_family.items()}
    lines += [f"## Primitives ({len(prims)})", ""]
    lines += ["| family | primitives |", "|---|---|"]
    lines += [f"| {k} | {counts[k]} |" for k in sorted(counts)]
    lines.append("")
    for fam in sorted(by_family):
        lines += [
            f"### {fam}",
            "",
            "| primitive | VJP | JVP | batch | zero-derivative | module | doc |",
            "|---|---|---|---|---|---|---|",
        ]
        for p, mod in sorted(by_family[fam], key=lambda pm: pm[0].name):
            vjp, jvp, batch, zero = _rules(p)
            doc = p.__doc__
            if doc is not None and doc == getattr(p.impl, "__doc__", None):
                if not (getattr(p.impl, "__module__", None) or "").startswith("diffsys"):
                    doc = None  # NumPy's own docstring (a ufunc signature): not ours
            doc = NOTES.get(p.name) or _first_line(doc)
            mod_txt = f"`{mod}`" if mod else ""
            lines.append(f"| `{p.name}` | {vjp} | {jvp} | {batch} | {zero} | {mod_txt} | {doc} |")
        lines.append("")
    lines += _gaps(prims)
    lines += ["## Public functions", ""]
    for modname in PUBLIC:
        rows = _describe_public(modname, Primitive)
        if not rows:
            continue
        n_prim = sum(1 for r in rows if r[1] == "primitive")
        n_comp = sum(1 for r in rows if r[1] == "composition")
        lines += [
            f"### `{modname}` ({n_prim} primitives, {n_comp} compositions, {len(rows)} names)",
            "",
            "| name | kind | primitives called directly |",
            "|---|---|---|",
        ]
        lines += [f"| `{n}` | {k} | {c} |" for n, k, c in rows]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is stale: run `python tools/api_coverage.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
