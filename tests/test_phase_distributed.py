"""A phase diagram over two processes with `jax.distributed` on localhost (CPU, gloo
collectives) equals the single-process one."""

import json
import os
import socket
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

import mfrnn


WORKER = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1])
)
import jax.numpy as jnp
import mfrnn
assert jax.device_count() == 2 and jax.local_device_count() == 1
G, S = jnp.meshgrid(jnp.array([0.5, 2.5, 1.0]), jnp.array([0.5, 2.5, 1.5]), indexing="ij")
ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G, phi=mfrnn.Tanh(order=61))
pd = mfrnn.phase_diagram(ens, throw=False)
print("RESULT", json.dumps(dict(phase=pd.phase.tolist(), kappa=pd.kappa.tolist())), flush=True)
jax.distributed.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_phase_diagram_over_two_processes_equals_one():
    port = str(_free_port())
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), port], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    results = [
        json.loads(next(l for l in out.splitlines() if l.startswith("RESULT"))[7:])
        for out, _ in outs
    ]
    G, S = jnp.meshgrid(jnp.array([0.5, 2.5, 1.0]), jnp.array([0.5, 2.5, 1.5]), indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G, phi=mfrnn.Tanh(order=61))
    single = mfrnn.phase_diagram(ens, throw=False)
    for r in results:  # both processes hold the whole diagram
        np.testing.assert_array_equal(r["phase"], single.phase)
        np.testing.assert_allclose(r["kappa"], single.kappa, rtol=1e-12, atol=1e-14)
    assert set(np.asarray(single.phase).ravel().tolist()) >= {0, 1, 2}
