"""The layer under data parallelism: a batch split over devices stays split in the backward.

Runs in a subprocess with two forced CPU devices (the flag must be set before
JAX starts). The gradient of a batch-sharded call must equal the unsharded
plain path, and its compiled program must reduce the weight gradients
(all-reduce) without gathering the batch's activations onto every device
(all-gather), which the (T*B, ...) reshape of the one-device form makes the
partitioner do.
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jlstm import init_params, layer

mesh = Mesh(np.array(jax.devices()), ("data",))
params = init_params(jax.random.key(0), 6, 8)
xs = jax.random.normal(jax.random.key(1), (4, 5, 6))
lengths = jnp.array([5, 3, 0, 4])

def loss(p, x, n, implementation="auto"):
    hs, final = layer(p, x, lengths=n, implementation=implementation)
    return (hs * jnp.sin(hs)).sum() + (final.c ** 2).sum()

grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
split = NamedSharding(mesh, PartitionSpec("data"))
args = (params, jax.device_put(xs, split), jax.device_put(lengths, split))
hlo = grad.lower(*args).compile().as_text()
fast = grad(*args)
plain = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=3)(params, xs, lengths, "reference")
diff = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
           for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)))
print(json.dumps({"devices": jax.device_count(), "all_gather": "all-gather" in hlo,
                  "all_reduce": "all-reduce" in hlo, "rel_diff": diff}))
"""


def run():
    env = {
        **os.environ,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sharded_gradient_reduces_without_gathering_the_batch():
    result = run()
    assert result["devices"] == 2
    assert result["rel_diff"] < 2e-5
    assert result["all_reduce"] and not result["all_gather"], result


GRID = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jlstm import init_params, layer, init_stack_params, stack

mesh = Mesh(np.array(jax.devices()), ("data",))
split = NamedSharding(mesh, PartitionSpec("data"))
params = init_params(jax.random.key(0), 3, 5)
xs = jax.random.normal(jax.random.key(1), (8, 6, 3))
lengths = jnp.array([6, 5, 4, 3, 2, 1, 0, 6])
sx, sl = jax.device_put(xs, split), jax.device_put(lengths, split)
worst = {}
for name in ("auto", "xla"):
    for reverse in (False, True):
        def f(b, x, n, impl):
            hs, final = layer(params._replace(b=b), x, lengths=n, reverse=reverse,
                              implementation=impl)
            return (jnp.sin(hs) ** 2).sum() + (final.c ** 2).sum()
        cases = {
            "grad": lambda x, n, impl: jax.grad(f)(params.b, x, n, impl),
            "jvp": lambda x, n, impl: jax.jvp(lambda b: f(b, x, n, impl), (params.b,),
                                              (jnp.cos(params.b),))[1],
            "hessian": lambda x, n, impl: jax.hessian(f)(params.b, x, n, impl),
        }
        for case, g in cases.items():
            run = jax.jit(g, static_argnums=2)
            got, want = run(sx, sl, name), run(xs, lengths, "reference")
            worst[f"{name}-{case}-{reverse}"] = float(jnp.max(jnp.abs(got - want)) /
                                                      jnp.max(jnp.abs(want)))
print(json.dumps({"devices": jax.device_count(), "worst": worst}))
"""


@pytest.mark.slow
def test_transformations_of_a_sharded_batch_on_four_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", GRID], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    assert len(result["worst"]) == 12
    assert max(result["worst"].values()) < 1e-5, result["worst"]
