"""JAX's persistent compilation cache for mfrnn: on by default in the `mfrnn` command
line and for the programs `fit` compiles; `enable_compilation_cache` turns it on for
every program. Importing mfrnn never changes JAX's global configuration.

`fit`'s programs (for mfrnn's own tasks) are kept by mfrnn itself in the same folder
(`mfrnn-programs/`, `_training/programs.py`): by an identity computed without tracing,
so a warm run neither traces, lowers nor compiles them; `compilation_cache_size` counts
them, `$MFRNN_NO_COMPILATION_CACHE` switches them off with the rest."""

import contextlib
import os
import pathlib


# Set (to anything but "" or "0") to keep the command line and `fit` from using the cache.
DISABLE_ENV = "MFRNN_NO_COMPILATION_CACHE"
# Folder of the cache, overriding the default below.
DIR_ENV = "MFRNN_COMPILATION_CACHE_DIR"
# `jax.monitoring` event recorded for every training program read back from the cache
# folder by mfrnn itself (`_training/programs.py`: no tracing, lowering or compiling);
# programs that JAX's own cache returns record "/jax/compilation_cache/cache_hits".
PROGRAM_HIT_EVENT = "/mfrnn/compilation_cache/program_hits"


def default_compilation_cache_dir() -> pathlib.Path:
    """`$MFRNN_COMPILATION_CACHE_DIR`, else `$XDG_CACHE_HOME/mfrnn/jax`, else
    `~/.cache/mfrnn/jax`."""
    if os.environ.get(DIR_ENV):
        return pathlib.Path(os.environ[DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base).expanduser() / "mfrnn" / "jax"


def compilation_cache_disabled() -> bool:
    """Whether `$MFRNN_NO_COMPILATION_CACHE` asks the command line and `fit` not to use
    the cache."""
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> pathlib.Path:
    """Store compiled XLA programs in `path` (default: `default_compilation_cache_dir()`)
    and reuse them in later processes, so a DMFT solve is compiled once per machine
    rather than once per run. This changes JAX's global configuration (every program
    compiled afterwards, mfrnn's or not, is cached); mfrnn never calls it by itself, the
    `mfrnn` command line does unless `$MFRNN_NO_COMPILATION_CACHE` is set.

    **Returns:** the cache folder.

    ```python
    mfrnn.enable_compilation_cache()
    ```

    As for any JAX compilation cache, do not point it at a folder that others can write.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    folder = pathlib.Path(path).expanduser() if path is not None else default_compilation_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    current = jax.config.jax_compilation_cache_dir
    if current is None or pathlib.Path(current) != folder:
        # JAX decides at its first compilation whether a cache is in use, and opens it
        # once: look again (also after programs were compiled without one).
        compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Every program: the command line's few programs all take seconds to compile.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def compilation_cache_size(path: str | os.PathLike | None = None) -> int:
    """Bytes held in the cache folder `path` (default: `default_compilation_cache_dir()`);
    0 if there is no such folder.

    ```python
    mfrnn.compilation_cache_size()
    ```
    """
    folder = pathlib.Path(path).expanduser() if path is not None else default_compilation_cache_dir()
    if not folder.is_dir():
        return 0
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def clear_caches() -> None:
    """Forget every program compiled in this process: the training programs that
    [`mfrnn.fit`][] compiles ahead of time and keeps, and JAX's own
    (`jax.clear_caches()`). The next call compiles again, or reads the persistent
    compilation cache where one is in use, as a fresh process would.

    ```python
    mfrnn.clear_caches()
    ```
    """
    import jax

    from ._training.programs import clear_memory

    clear_memory()
    jax.clear_caches()


def persistent_cache_folder() -> pathlib.Path | None:
    """The folder `compilation_cache_scope` would use: a configured
    `jax_compilation_cache_dir`, else `default_compilation_cache_dir()` unless
    `$MFRNN_NO_COMPILATION_CACHE` is set (then None). JAX is not configured."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current is not None:
        return pathlib.Path(current)
    if compilation_cache_disabled():
        return None
    return default_compilation_cache_dir()


@contextlib.contextmanager
def compilation_cache_scope():
    """Programs compiled inside are read from / written to the persistent cache in
    `default_compilation_cache_dir()`, unless `$MFRNN_NO_COMPILATION_CACHE` is set or
    a cache is already configured (then that one is used as it is). JAX's settings
    are restored on exit, so `fit` leaves the global configuration as it found it.

    Yields the cache folder in use, or None.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    current = jax.config.jax_compilation_cache_dir
    if current is not None or compilation_cache_disabled():
        yield None if current is None else pathlib.Path(current)
        return
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    folder = default_compilation_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # JAX decides once whether a cache is in use: reset so it looks again, both ways.
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    try:
        yield folder
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
        compilation_cache.reset_cache()
