"""One contract for every entry point, checked on the public namespace (`mfrnn.*`) and
on the sources. No computation: signatures, annotations and syntax trees only.

Solvers. A public function is a solver if it takes `throw`, or if its name says it
solves or finds something: `solve_*`, `find_*`, `continue_*`, `dmft_*`, `*_boundary`,
`*_boundaries`, `kappa_instability_*`, `phase_diagram`, `chaos_onset`,
`activity_dimension`, `random_mode_spectra`. Every solver takes `throw` with default
True and is annotated to return a Module with a `result` field (or a tuple of them;
`simulate` returns diffrax's `Solution`, which has one too).

Randomness. A public function draws random numbers if its body, or the body of any
mfrnn function it calls by name (followed transitively), calls a `jax.random`
function other than the key constructors, or passes a `key=` argument. Every such
function has a parameter `key`, keyword only and without default. Two kinds are
exempt, each with its own rule below: functions whose only randomness is optional
noise (`noise_std`, off by default) take `key=None` and raise a `ValueError` when
noise is asked for without a key; and a training run is seeded by its integer `seed`,
which its checkpoint stores (`fit`, and `load_checkpoint`, which rebuilds the run's
initial networks from it). Public classes' `sample` methods take `key` without
default. No library code builds a key from a constant (`jr.key(0)`): that is a
hidden default.

Repetition. No block of more than 10 consecutive lines appears twice in `src/`
(lines compared without indentation; blank lines, import statements and the field
declarations of classes are skipped).

Options. No public function, class or method takes a bare string as an option: a choice
between behaviours is an enum (docs/conventions.md, "Options") whose docstring documents
every member, and a value outside it raises a `ValueError` naming the argument. Strings
remain where they are names (a task, a nonlinearity, a file path, labels of results),
listed in `NAMES`. The command line parses strings into the enums; it draws no random
numbers and maps nothing itself (only builds keys), so what it runs is reachable from
Python.
"""

import ast
import collections
import dataclasses
import enum
import fnmatch
import inspect
import os
import pathlib
import re
import typing

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

import mfrnn


SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "mfrnn"

SOLVER_NAMES = (
    "solve_*", "find_*", "continue_*", "dmft_*", "*_boundary", "*_boundaries",
    "kappa_instability_*", "phase_diagram", "chaos_onset", "activity_dimension",
    "random_mode_spectra",
)
# Randomness only as optional noise: `key` may default to None (tested below).
NOISE_ONLY = ("simulate", "simulate_euler", "run_trials", "training_loss")
# Seeded by an integer stored in the checkpoint (the rule above).
SEEDED = ("load_checkpoint",)
# jax.random functions that make keys from data rather than consume them.
KEY_CONSTRUCTORS = {"key", "PRNGKey", "key_data", "wrap_key_data", "key_impl", "clone"}


def _public():
    for name in sorted(dir(mfrnn)):
        if name.startswith("_") or name == "plotting":
            continue
        obj = getattr(mfrnn, name)
        if callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj):
            yield name, obj


def _unwrap(fn):
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def _params(fn) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


def _is_solver(name, fn) -> bool:
    return "throw" in _params(fn) or any(fnmatch.fnmatch(name, p) for p in SOLVER_NAMES)


def _has_result(annotation) -> bool:
    if typing.get_origin(annotation) is tuple:
        return all(_has_result(a) for a in typing.get_args(annotation) if a is not Ellipsis)
    if annotation is dfx.Solution:
        return True
    return (
        inspect.isclass(annotation)
        and issubclass(annotation, eqx.Module)
        and "result" in {f.name for f in dataclasses.fields(annotation)}
    )


def test_every_solver_takes_throw_and_returns_a_result():
    solvers, bad = [], []
    for name, fn in _public():
        if not _is_solver(name, fn):
            continue
        solvers.append(name)
        throw = _params(fn).get("throw")
        if throw is None or throw.default is not True:
            bad.append(f"{name}: needs `throw: bool = True`")
        returns = inspect.signature(fn).return_annotation
        if not _has_result(returns):
            bad.append(f"{name}: returns {returns!r}, not a Module with `result`")
    assert "solve_dmft" in solvers and "phase_diagram" in solvers
    assert "dmft_autocorrelation" in solvers and "activity_dimension" in solvers
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- randomness


def _draws(node: ast.AST) -> bool:
    """Whether the syntax tree calls a jax.random function or passes `key=`."""
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Call):
            continue
        if any(k.arg == "key" for k in sub.keywords):
            return True
        f = sub.func
        if isinstance(f, ast.Attribute) and f.attr not in KEY_CONSTRUCTORS:
            base = f.value
            if isinstance(base, ast.Name) and base.id == "jr":
                return True
            if (isinstance(base, ast.Attribute) and base.attr == "random"
                    and isinstance(base.value, ast.Name) and base.value.id == "jax"):
                return True
    return False


def _tree(fn):
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    return ast.parse(_dedent(source))


def _dedent(source: str) -> str:
    lines = source.splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(line[indent:] for line in lines)


def _uses_randomness(fn, seen=None) -> bool:
    seen = set() if seen is None else seen
    fn = _unwrap(fn)
    if id(fn) in seen or not getattr(fn, "__module__", "").startswith("mfrnn"):
        return False
    seen.add(id(fn))
    tree = _tree(fn)
    if tree is None:
        return False
    if _draws(tree):
        return True
    namespace = getattr(fn, "__globals__", {})
    noise_only = {id(_unwrap(getattr(mfrnn, name))) for name in NOISE_ONLY}
    for sub in ast.walk(tree):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name):
            callee = _unwrap(namespace.get(sub.func.id))
            # A noise-only function draws only when given a key (found by _draws).
            if inspect.isfunction(callee) and id(callee) not in noise_only:
                if _uses_randomness(callee, seen):
                    return True
    return False


def test_every_function_with_randomness_requires_key():
    random, bad = [], []
    for name, fn in _public():
        if name in SEEDED or not _uses_randomness(fn):
            continue
        random.append(name)
        key = _params(fn).get("key")
        if key is None:
            bad.append(f"{name}: draws random numbers but has no `key`")
        elif name in NOISE_ONLY:
            noise = _params(fn).get("noise_std")  # (training_loss: `config.noise_std`)
            if (noise is not None and noise.default not in (None, 0.0)) or key.default is not None:
                bad.append(f"{name}: noise-only randomness needs `noise_std` off and `key=None`")
        elif key.default is not inspect.Parameter.empty or key.kind is not key.KEYWORD_ONLY:
            bad.append(f"{name}: `key` must be keyword only, without default")
    assert {"init_network", "evaluate", "lyapunov_exponents", "compare_lowrank"} <= set(random)
    assert set(NOISE_ONLY) <= set(random)
    assert not bad, "\n".join(bad)


def test_sample_methods_require_key():
    bad = []
    for name in dir(mfrnn):
        cls = getattr(mfrnn, name)
        if inspect.isclass(cls) and callable(getattr(cls, "sample", None)):
            key = _params(cls.sample).get("key")
            if key is None or key.default is not inspect.Parameter.empty:
                bad.append(name)
    assert not bad, f"`sample` without a required `key`: {bad}"


def test_noise_without_key_is_an_error():
    net = mfrnn.GaussianEnsemble(1.5).sample(8, key=jr.key(0))
    with pytest.raises(ValueError, match="key"):
        mfrnn.simulate_euler(net, jnp.zeros(8), dt=0.1, n_steps=4, noise_std=0.1)
    with pytest.raises(ValueError, match="key"):
        mfrnn.simulate(net, jnp.zeros(8), jnp.linspace(0.0, 1.0, 3), noise_std=0.1, dt0=0.1)
    task = mfrnn.make_task("flipflop3")
    net = mfrnn.init_network(task, mfrnn.NetworkSpec(n=8), key=jr.key(1))
    u = jnp.zeros((2, 3, task.n_in))
    with pytest.raises(ValueError, match="key"):
        mfrnn.run_trials(net, u, dt=task.dt, noise_std=0.1)


def _constant_keys(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("key", "PRNGKey")
                and node.args and isinstance(node.args[0], ast.Constant)):
            yield node.lineno


def test_no_key_built_from_a_constant_in_library_code():
    found = [
        f"{path.relative_to(SRC.parent)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        for line in _constant_keys(path)
    ]
    assert not found, "Keys built from constants (require `key` instead):\n" + "\n".join(found)


# --------------------------------------------------------------------------- repetition

WINDOW = 11  # more than 10 lines
# Repeats known when this test was written, left to their owners to factor out; each
# entry must still be found (remove it once the repeat is gone).
KNOWN_REPEATS: set[tuple[str, ...]] = set()


def _skipped_lines(tree: ast.AST) -> set[int]:
    """Line numbers of import statements and of class-level field declarations."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip |= set(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign):
                    skip |= set(range(stmt.lineno, stmt.end_lineno + 1))
    return skip


def _code_lines(path: pathlib.Path) -> list[tuple[int, str]]:
    text = path.read_text()
    skip = _skipped_lines(ast.parse(text))
    return [
        (i, line.strip())
        for i, line in enumerate(text.splitlines(), start=1)
        if line.strip() and i not in skip
    ]


def test_no_block_of_more_than_ten_lines_is_repeated():
    files = {path: _code_lines(path) for path in sorted(SRC.rglob("*.py"))}
    blocks = {
        path: [tuple(text for _, text in lines[k : k + WINDOW])
               for k in range(len(lines) - WINDOW + 1)]
        for path, lines in files.items()
    }
    where = collections.defaultdict(list)
    for path, windows in blocks.items():
        for k, block in enumerate(windows):
            where[block].append((path, k))
    covered, runs = set(), []
    for path, windows in blocks.items():
        for k, block in enumerate(windows):
            places = where[block]
            # Overlapping occurrences (a block that repeats itself at once) count once.
            distinct = places[:1] + [
                b for a, b in zip(places, places[1:]) if a[0] != b[0] or b[1] - a[1] >= WINDOW
            ]
            if len(distinct) < 2:
                continue
            if (path, k) not in covered:  # a longer run is reported at its first window
                runs.append(tuple((str(p.relative_to(SRC.parent)), files[p][i][0])
                                  for p, i in distinct))
            for p, i in distinct:
                covered.update((p, j) for j in range(i, i + WINDOW))
    known = {run for run in runs if tuple(f for f, _ in run) in KNOWN_REPEATS}
    new = [" and ".join(f"{f}:{line}" for f, line in run) for run in runs if run not in known]
    assert not new, f"Blocks of more than {WINDOW - 1} lines repeated in src/:\n" + "\n".join(new)
    gone = KNOWN_REPEATS - {tuple(f for f, _ in run) for run in known}
    assert not gone, f"No longer repeated: remove from KNOWN_REPEATS: {sorted(gone)}"


# --------------------------------------------------------------------------- options

# Parameters that are strings because they are names, not options.
NAMES = {
    ("make_task", "name"), ("task_arguments", "name"), ("nonlinearity", "name"),
    ("NeurogymTask", "env_id"),
    ("LogicGate", "gate"),  # named by the task: make_task("xor") (and, or, not: keywords)
    ("NetworkSpec", "phi"),  # a nonlinearity name, as `nonlinearity` takes it
    ("TrainConfig", "train"),  # names of trained parameters
    ("TrainConfig", "dtype"),  # a dtype name ("float32"), as jnp.dtype takes it
    ("summary_repr", "indent"),
    # Fields of results: labels.
    ("PhaseBoundary", "name"), ("PhaseBoundary", "label"), ("PopulationFit", "names"),
    ("PsychometricCurve", "group_names"), ("PsychometricCurve", "xlabel"),
}
# String options known when this rule was written, in code being changed by others
# (training, random-mode spectra); each must still be found (remove it once it is an
# enum: `mfrnn.Loss` and `mfrnn.DaleConstraint` exist and are accepted there already).
KNOWN_STRING_OPTIONS = {
    # A ModeSpectrum, but any string passes the type checks: tests/test_random_mode.py
    # expects a ValueError naming `spectrum` for an unknown name (ModeSpectrumLike once
    # that test accepts the type checks' TypeError too).
    ("RandomModeEnsemble", "spectrum"),
}


def _callables():
    """Public functions, classes (their constructor) and public methods of classes, by
    qualified name."""
    for name in sorted(dir(mfrnn)):
        if name.startswith("_") or name == "plotting":
            continue
        obj = getattr(mfrnn, name)
        if inspect.isclass(obj):
            if issubclass(obj, enum.Enum) or not obj.__module__.startswith("mfrnn"):
                continue
            yield name, obj, obj.__init__
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(value, classmethod | staticmethod):
                    value = value.__func__
                if inspect.isfunction(value):
                    yield f"{name}.{attr}", value, value
        elif callable(obj) and not inspect.ismodule(obj):
            yield name, obj, _unwrap(obj)


def _admits_a_string(annotation) -> bool:
    """Whether an annotation admits a bare string: `str`, a Literal of strings, or a
    union or tuple holding one. An option enum in a union with a Literal of exactly its
    members' names (`LossLike` in signatures) is not a bare string: it is the enum.
    Paths (`os.PathLike` in a union) and dicts (keyed by names) are not options."""
    if isinstance(annotation, str):  # unresolved
        return bool(re.search(r"\bstr\b|Literal\[", annotation))
    if annotation is str:
        return True
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return any(isinstance(a, str) for a in args)
    if origin is dict or os.PathLike in args:
        return False
    literal = lambda a: typing.get_origin(a) is typing.Literal
    enums = [a for a in args if inspect.isclass(a) and issubclass(a, enum.Enum)]
    names = {v for a in args if literal(a) for v in typing.get_args(a)}
    if enums and names == {m.value for e in enums for m in e}:
        args = tuple(a for a in args if not literal(a))
    return any(_admits_a_string(a) for a in args)


def _hints(fn) -> dict:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return getattr(fn, "__annotations__", {})


def test_no_public_option_is_a_bare_string():
    found = set()
    for name, obj, fn in _callables():
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        hints = _hints(fn)
        for p in params.values():
            string_default = isinstance(p.default, str) and not isinstance(p.default, enum.Enum)
            if _admits_a_string(hints.get(p.name, p.annotation)) or string_default:
                found.add((name, p.name))
    assert ("Tanh", "rule") not in found and ("DaleNetwork", "constraint") not in found
    new = sorted(found - NAMES - KNOWN_STRING_OPTIONS)
    assert not new, (
        "String options in the public API (make an enum, docs/conventions.md 'Options'; "
        f"or add a genuine name to NAMES): {new}"
    )
    gone = sorted(KNOWN_STRING_OPTIONS - found)
    assert not gone, f"No longer string options: remove from KNOWN_STRING_OPTIONS: {gone}"


def _option_enums():
    return [getattr(mfrnn, n) for n in dir(mfrnn) if inspect.isclass(getattr(mfrnn, n))
            and issubclass(getattr(mfrnn, n), enum.Enum)]


def test_option_enums_document_every_member():
    enums = _option_enums()
    assert {mfrnn.Branch, mfrnn.Loss, mfrnn.PhiFunction, mfrnn.QuadratureRule} <= set(enums)
    bad = [f"{cls.__name__}.{m.name}" for cls in enums for m in cls
           if f"{cls.__name__}.{m.name}" not in (cls.__doc__ or "")]
    assert not bad, f"Enum members missing from their class docstring: {bad}"


def test_a_value_outside_an_option_is_an_error_naming_it():
    # A ValueError from the function; under the tests' runtime type checks the
    # annotation (the enum or its names) already rejects the value, with a TypeError.
    bad = (ValueError, TypeError)
    with pytest.raises(bad, match="(?s)rule.*QuadratureRule"):
        mfrnn.Tanh(rule="simpson")
    with pytest.raises(bad, match="(?s)rule.*QuadratureRule"):
        mfrnn.gaussian_average(jnp.tanh, 0.0, 1.0, rule="simpson")
    with pytest.raises(bad, match="(?s)which.*PhiFunction"):
        mfrnn.Erf().gaussian_mean(0.0, 1.0, "d3phi")
    with pytest.raises(bad, match="(?s)constraint.*DaleConstraint"):
        mfrnn.DaleNetwork(jnp.eye(2), jnp.ones(2), constraint="clip")
    with pytest.raises(bad, match="(?s)spectrum.*ModeSpectrum"):
        mfrnn.RandomModeEnsemble(2.0, 0.5, spectrum="gamma")
    # Members are their names: what configs, checkpoints and the command line store.
    assert mfrnn.Tanh(rule="gauss-hermite").rule is mfrnn.QuadratureRule.gauss_hermite
    assert mfrnn.Loss("xent") is mfrnn.Loss.xent and mfrnn.Loss.xent == "xent"


def test_cli_draws_and_maps_nothing():
    tree = ast.parse((SRC / "cli.py").read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            base = f.value
            random = (isinstance(base, ast.Name) and base.id == "jr") or (
                isinstance(base, ast.Attribute) and base.attr == "random")
            if random and f.attr not in {"key", "PRNGKey", "split", "fold_in"}:
                bad.append(f"{node.lineno}: draws with {f.attr}")
            if f.attr in {"vmap", "filter_vmap", "pmap", "shard_map"}:
                bad.append(f"{node.lineno}: maps with {f.attr}")
    assert not bad, "cli.py does library work (move it into a public function):\n" + (
        "\n".join(bad))
