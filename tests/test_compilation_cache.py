"""`fit` keeps its programs in JAX's persistent compilation cache by default: a run that
reads them back trains bit-identical parameters to the run that compiled them, the
cache can be switched off ($MFRNN_NO_COMPILATION_CACHE), and JAX's configuration is
left as it was."""

import equinox as eqx
import jax
import mfrnn
import pytest


def _fit():
    task = mfrnn.SetResetFlipFlop(first=40.0, pulse=40.0, gap=100.0, n_turns=2, grace=40.0)
    config = mfrnn.TrainConfig(n_steps=6, batch_size=4, learning_rate=1e-2, eval_every=3,
                               eval_batch=8)
    mfrnn.clear_caches()  # as in a fresh process: compile, or read the persistent cache
    return mfrnn.fit(task, mfrnn.NetworkSpec(n=12), config, n_seeds=2, key=jax.random.key(0))


@pytest.fixture
def cache_hits():
    hits = []

    def listener(event, **kwargs):
        # Programs read back by JAX's cache, or by mfrnn's (no tracing, lowering or
        # compiling: `_training/programs.py`).
        if event in ("/jax/compilation_cache/cache_hits", "/mfrnn/compilation_cache/program_hits"):
            hits.append(event)

    jax.monitoring.register_event_listener(listener)
    yield hits
    jax.monitoring.unregister_event_listener(listener)


def test_cached_run_is_bit_identical(tmp_path, monkeypatch, cache_hits):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MFRNN_COMPILATION_CACHE_DIR", str(folder))
    monkeypatch.delenv("MFRNN_NO_COMPILATION_CACHE", raising=False)
    compiled = _fit()  # the programs compiled by XLA (and written to the cache)
    size = mfrnn.compilation_cache_size(folder)
    assert size > 0 and not cache_hits
    # The same programs read back, with their output trees: nothing is traced.
    import importlib

    programs = importlib.import_module("mfrnn._training.programs")

    def traced(*args):
        raise AssertionError("a program read back from the cache was traced")

    monkeypatch.setattr(programs, "output_shapes", traced)
    cached = _fit()
    assert len(cache_hits) >= 4 and mfrnn.compilation_cache_size(folder) == size
    assert bool(eqx.tree_equal(cached.models, compiled.models))
    assert bool(eqx.tree_equal(cached.opt_states, compiled.opt_states))
    assert cached.history == compiled.history
    # fit restores JAX's configuration: later programs are not cached.
    assert jax.config.jax_compilation_cache_dir is None


def test_the_cache_can_be_switched_off(tmp_path, monkeypatch):
    # (On, the default: test_cached_run_is_bit_identical.)
    folder = tmp_path / "cache"
    monkeypatch.setenv("MFRNN_COMPILATION_CACHE_DIR", str(folder))
    monkeypatch.setenv("MFRNN_NO_COMPILATION_CACHE", "1")
    _fit()
    assert mfrnn.compilation_cache_size(folder) == 0
    assert jax.config.jax_compilation_cache_dir is None
