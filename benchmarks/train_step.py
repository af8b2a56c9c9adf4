"""One whole training step of the default experiment: jlstm against the same step in PyTorch.

Run: ``python benchmarks/train_step.py [--rounds 7]`` (prints a Markdown table;
``bench.py`` includes it in RESULTS.md).

The step is what ``python train.py`` (``configs/default.py``) runs: the
JapaneseVowels speaker classifier (12 features, sequences of 7-29 steps padded
to 29 with their lengths, batch 30), a 1-layer bidirectional LSTM with 64
units, mean pooling over the real steps, a linear head to 9 classes, softmax
cross-entropy, the global gradient norm clipped to 1, AdamW with a warmup-cosine
learning rate. Both sides run the same nine batches of the real training data
(one epoch), in turn.

* jlstm: the task, optimizer and jitted step of :mod:`jlstm.train`
  (``make_task``, ``make_optimizer``, ``init_train_state``,
  ``make_train_step``), the model built as ``make_task`` builds it, once per
  ``implementation=``. The step also skips an update whose loss or gradient
  norm is not finite, and computes the batch accuracy.
* PyTorch (2 threads): ``nn.LSTM(bidirectional=True)`` over
  ``pack_padded_sequence``, masked mean, ``nn.Linear``, ``F.cross_entropy``,
  ``clip_grad_norm_``, ``torch.optim.AdamW`` and a ``LambdaLR`` warmup-cosine,
  and the batch accuracy; eager, as a PyTorch loop runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
from peers import Missing, Unavailable  # noqa: E402
from timing import measure  # noqa: E402

IMPLEMENTATIONS = ("auto", "xla", "cpu_kernel", "reference")
TORCH = "PyTorch (packed nn.LSTM, AdamW, clip_grad_norm_)"


def default_config():
    """``configs/default.py``'s ``get_config()`` (configs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("default_config", f"{ROOT}/configs/default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def task_and_batches(config, count: int = 9):
    """The default run's task (``jlstm.train.make_task``) and its first ``count`` training
    batches (9 = one epoch), as the training loop draws them."""
    from jlstm.train import make_task

    task = make_task(config, jax.random.key(config.seed))
    return task, [task.train_batch(step) for step in range(count)]


def _cycle(fns: list[Callable[[], object]]) -> Callable[[], object]:
    """One zero-argument function calling each of ``fns`` in turn, one per call."""
    position = [0]

    def call():
        fn = fns[position[0] % len(fns)]
        position[0] += 1
        return fn()

    return call


def jlstm_step(
    config, task, data, implementation: str = "auto"
) -> tuple[Callable[[], object], float]:
    """(one train step, blocking; the first call's seconds: trace + compile + run).

    The model is ``task.model`` for "auto"; for another implementation, the same
    constructor call as ``make_task``'s with ``implementation=`` added."""
    import jax.numpy as jnp
    from flax import nnx

    from jlstm.nn import SequenceClassifier
    from jlstm.train import init_train_state, make_optimizer, make_train_step
    from jlstm.train.tasks.base import sequence_model_options

    key = jax.random.key(config.seed)
    model = task.model
    if implementation != "auto":
        features, classes = data[0]["xs"].shape[-1], task.model.head.num_classes
        model = SequenceClassifier(
            features,
            config.model.hidden_size,
            classes,
            **sequence_model_options(config.model),
            implementation=implementation,
            rngs=nnx.Rngs(key),
        )
    optimizer = make_optimizer(config.optim)
    graphdef, state = init_train_state(model, optimizer, key)
    step = make_train_step(graphdef, task.loss_fn, optimizer)
    on_device = [jax.tree.map(jnp.asarray, b) for b in data]
    holder = [state]

    def one(batch):
        def run():
            holder[0], metrics = step(holder[0], batch)
            return jax.block_until_ready((holder[0], metrics))

        return run

    run = _cycle([one(b) for b in on_device])
    start = time.perf_counter()
    try:
        run()
    except ValueError as e:  # an implementation that cannot run this call
        raise Unavailable(str(e).split(". Use ")[0]) from e
    return run, time.perf_counter() - start


def torch_step(config, task, data) -> tuple[Callable[[], object], float]:
    """The same step in PyTorch, eager, 2 threads."""
    try:
        import torch
        from torch import nn
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    except ImportError as e:
        raise Missing("torch") from e
    torch.set_num_threads(2)
    torch.manual_seed(config.seed)
    m, o = config.model, config.optim
    features = data[0]["xs"].shape[-1]
    classes = task.model.head.num_classes
    if m.num_layers != 1 or m.pooling != "mean" or m.dropout or o.name != "adamw":
        raise Unavailable("the PyTorch step is written for configs/default.py's model and optim")

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            directions = 2 if m.bidirectional else 1
            self.lstm = nn.LSTM(
                features, m.hidden_size, batch_first=True, bidirectional=m.bidirectional
            )
            for name, bias in self.lstm.named_parameters():  # forget_bias, as jlstm's init
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        bias[m.hidden_size : 2 * m.hidden_size] = m.forget_bias
            self.head = nn.Linear(directions * m.hidden_size, classes)

        def forward(self, xs, lengths):
            packed = pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
            hs, _ = pad_packed_sequence(
                self.lstm(packed)[0], batch_first=True, total_length=xs.shape[1]
            )  # (B, T, 2H), zero at padding
            return self.head(hs.sum(1) / lengths[:, None].to(hs.dtype))

    model = Classifier()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=o.learning_rate, weight_decay=o.weight_decay
    )
    warmup, decay, final = o.warmup_steps, o.decay_steps, o.final_lr_fraction

    def lr_factor(t):  # optax.warmup_cosine_decay_schedule, as a fraction of the peak
        if t < warmup:
            return t / warmup
        progress = min(1.0, (t - warmup) / max(1, decay - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    tensors = [
        (
            torch.as_tensor(b["xs"], dtype=torch.float32),
            torch.as_tensor(b["lengths"], dtype=torch.int64),
            torch.as_tensor(b["y"], dtype=torch.int64),
        )
        for b in data
    ]

    def one(xs, lengths, y):
        def run():
            optimizer.zero_grad(set_to_none=True)
            logits = model(xs, lengths)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip_norm)
            optimizer.step()
            schedule.step()
            accuracy = (logits.argmax(-1) == y).float().mean()
            return loss.detach(), accuracy

        return run

    run = _cycle([one(*t) for t in tensors])
    start = time.perf_counter()
    run()
    return run, time.perf_counter() - start


def run(rounds: int = 7, notes: list[str] | None = None) -> dict:
    """Build every step, time them interleaved; ``notes`` collects what was skipped."""
    notes = [] if notes is None else notes
    config = default_config()
    task, data = task_and_batches(config)
    steps, first = {}, {}
    for name in IMPLEMENTATIONS:
        label = f"jlstm, implementation={name!r}"
        try:
            steps[label], first[label] = jlstm_step(config, task, data, name)
        except Unavailable as e:
            notes.append(f"train step, {label}: skipped, {e}.")
    try:
        steps[TORCH], first[TORCH] = torch_step(config, task, data)
    except Unavailable as e:
        notes.append(f"train step, {TORCH}: skipped, {e}.")
    stats = measure(steps, rounds=rounds)
    shape = data[0]["xs"].shape
    lengths = np.concatenate([b["lengths"] for b in data])
    # What "auto" runs for the first layer (both directions see the same shapes).
    auto = peers.auto_choice(shape[0], shape[1], shape[2], config.model.hidden_size)
    return dict(stats=stats, first=first, shape=shape, lengths=lengths, config=config, auto=auto)


def to_markdown(results: dict) -> str:
    stats, first, config = results["stats"], results["first"], results["config"]
    batch, steps, features = results["shape"]
    lengths = results["lengths"]
    torch_ms = stats[TORCH].median_ms if TORCH in stats else None
    m = config.model
    lines = [
        f"`configs/default.py`'s step: batch {batch} of JapaneseVowels, {features} features, "
        f"padded to T={steps} (lengths {lengths.min()}-{lengths.max()}, mean "
        f"{lengths.mean():.1f}), {m.num_layers}-layer "
        f"{'bidirectional ' if m.bidirectional else ''}LSTM with H={m.hidden_size}, "
        f"{m.pooling} pooling, linear head, cross-entropy, global-norm clip "
        f"{config.optim.grad_clip_norm}, AdamW; the loss, gradient and update in one call, "
        "over the nine batches of one epoch in turn. Milliseconds per step. "
        f"`implementation='auto'` ran {results['auto']!r} here.",
        "",
        "| step | ms per step | ÷ PyTorch | steps/s | first call (s) | clean rounds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats.items():
        ratio = f"{s.median_ms / torch_ms:.2f}" if torch_ms else "—"
        lines.append(
            f"| {name} | {s.median_ms:.2f} | {ratio} | {1000 / s.median_ms:.0f} | "
            f"{first[name]:.2f} | {min(s.clean, s.used)} of {s.used} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    notes: list[str] = []
    print(to_markdown(run(args.rounds, notes)))
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
