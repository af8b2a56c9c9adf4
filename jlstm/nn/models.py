"""Model assemblies: a recurrent encoder (the LSTM by default), a pooling, a head.

Every model's ``__call__`` takes ``dropout_key`` (``None``: no dropout, as at
evaluation); no model stores a random key, so ``nnx.state(model)`` holds only
parameters and checkpoints cleanly. Two dropouts exist: ``dropout`` between
LSTM layers (as in PyTorch's ``nn.LSTM``) and ``output_dropout`` on what the
head reads (the pooled vector, or every step's output).

The encoder's options are written once, on :class:`SequenceEncoder` and
:class:`~jlstm.nn.Recurrent`: every model takes them as keyword arguments
(``num_layers``, ``bidirectional``, ``dropout``, ``cell``, ``implementation``,
``unroll``, ``remat``, the cell's init options such as ``forget_bias``; and for
the pooled models ``pooling``, ``attention``, ``num_heads``,
``attention_size``) and passes them on unchanged.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jlstm.masking import sequence_mask
from jlstm.nn.heads import ClassificationHead, MatchingHead, RegressionHead
from jlstm.nn.pooling import AttentionPooling, make_pooling
from jlstm.nn.recurrent import Recurrent

Array = jax.Array


def _split(key: Array | None) -> tuple[Array | None, Array | None]:
    """(key for the LSTM, key for the output dropout), or Nones."""
    if key is None:
        return None, None
    k_lstm, k_out = jax.random.split(key)
    return k_lstm, k_out


def _dropout(x: Array, rate: float, key: Array | None) -> Array:
    """Inverted dropout: zero with probability ``rate``, scale the rest by 1 / (1 - rate)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _check_rate(name: str, rate: float) -> float:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must lie in [0, 1); got {rate!r}")
    return float(rate)


class SequenceEncoder(nnx.Module):
    """Recurrent layers -> pooling over time: one vector per sequence.

    ``rnn_options`` go to :class:`~jlstm.nn.Recurrent` (``cell``,
    ``num_layers``, ``bidirectional``, ``dropout``, ``implementation``, ...).

    ``pooling`` is ``"last"`` (h at the last real step; both directions'
    final states when bidirectional), ``"mean"``, ``"max"`` or
    ``"attention"`` (``attention="additive"`` or ``"dot"``, ``num_heads``
    heads). Returns ``(pooled, weights)``: ``weights`` are the attention
    weights, or ``None`` for the other poolings.

    Shapes:
      xs: (B, T, in_features)  ->  pooled: (B, out_features),
      weights: (B, T), (B, num_heads, T) or None
      out_features = D * H, times num_heads for attention (D = 2 if bidirectional)

    >>> enc = SequenceEncoder(3, 8, bidirectional=True, pooling="mean", rngs=nnx.Rngs(0))
    >>> pooled, weights = enc(jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
    >>> pooled.shape, weights, enc.out_features
    ((2, 16), None, 16)
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        pooling: str = "last",
        attention: str = "additive",
        num_heads: int = 1,
        attention_size: int | None = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **rnn_options: Any,
    ):
        self.rnn = Recurrent(
            in_features, hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs, **rnn_options
        )
        self.pooling = make_pooling(
            pooling,
            self.rnn.out_features,
            bidirectional=self.rnn.bidirectional,
            attention=attention,
            num_heads=num_heads,
            attention_size=attention_size,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.pooling_name = pooling

    @property
    def out_features(self) -> int:
        if isinstance(self.pooling, AttentionPooling):
            return self.pooling.out_features
        return self.rnn.out_features

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
    ) -> tuple[Array, Array | None]:
        hs, _ = self.rnn(xs, lengths=lengths, mask=mask, dropout_key=dropout_key)
        if isinstance(self.pooling, AttentionPooling):
            return self.pooling(hs, lengths=lengths, mask=mask)
        return self.pooling(hs, lengths=lengths, mask=mask), None


class _PooledModel(nnx.Module):
    """An encoder, output dropout and a head; the shared body of classifier and regressor."""

    def _forward(self, xs, lengths, mask, dropout_key, return_attention):
        if return_attention and self.encoder.pooling_name != "attention":
            raise ValueError(
                "return_attention=True needs pooling='attention'; this model pools with "
                f"{self.encoder.pooling_name!r}"
            )
        k_lstm, k_out = _split(dropout_key)
        pooled, weights = self.encoder(xs, lengths=lengths, mask=mask, dropout_key=k_lstm)
        out = self.head(_dropout(pooled, self.output_dropout, k_out))
        return (out, weights) if return_attention else out


class SequenceClassifier(_PooledModel):
    """LSTM -> pooling -> linear: one set of class logits per sequence.

    Args:
      in_features, hidden_size: the recurrent encoder's sizes.
      num_classes: logits per sequence.
      output_dropout: dropout on the pooled vector before the head.
      dtype, param_dtype: matmul and parameter dtypes (outputs stay float32).
      rngs: for initialisation only.
      **encoder_options: to :class:`SequenceEncoder`: ``pooling`` (``"last"``,
        ``"mean"``, ``"max"`` or ``"attention"``), ``attention`` (``"additive"``
        or ``"dot"``), ``num_heads``, ``attention_size``, and the recurrent
        layers' options (``cell``, ``num_layers``, ``bidirectional``,
        ``dropout`` between layers, ``implementation``, ``forget_bias``, ...).

    ``__call__(xs, *, lengths=None, mask=None, dropout_key=None,
    return_attention=False)`` returns the logits, or ``(logits, weights)``
    with ``return_attention=True`` (attention pooling only).

    Shapes:
      xs: (B, T, in_features)  ->  logits: (B, num_classes)
      weights: (B, T), or (B, num_heads, T) with several heads

    >>> model = SequenceClassifier(3, 8, 4, pooling="attention", rngs=nnx.Rngs(0))
    >>> logits, weights = model(jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]),
    ...                         return_attention=True)
    >>> logits.shape, weights.shape
    ((2, 4), (2, 5))
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        num_classes: int,
        *,
        output_dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **encoder_options: Any,
    ):
        self.encoder = SequenceEncoder(
            in_features,
            hidden_size,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            **encoder_options,
        )
        self.head = ClassificationHead(
            self.encoder.out_features, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.output_dropout = _check_rate("output_dropout", output_dropout)

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
        return_attention: bool = False,
    ) -> Array | tuple[Array, Array]:
        return self._forward(xs, lengths, mask, dropout_key, return_attention)

    def probabilities(
        self, xs: Array, *, lengths: Array | None = None, mask: Array | None = None
    ) -> Array:
        """softmax of the logits (no dropout), float32, (B, num_classes)."""
        return jax.nn.softmax(self(xs, lengths=lengths, mask=mask).astype(jnp.float32), axis=-1)


class SequenceRegressor(_PooledModel):
    """LSTM -> pooling -> linear: ``out_features`` real values per sequence.

    Options as :class:`SequenceClassifier`.

    Shapes:
      xs: (B, T, in_features)  ->  (B, out_features)

    >>> model = SequenceRegressor(3, 8, 2, pooling="max", rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 5, 3)), lengths=jnp.array([5, 4, 2, 1])).shape
    (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        out_features: int,
        *,
        output_dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **encoder_options: Any,
    ):
        self.encoder = SequenceEncoder(
            in_features,
            hidden_size,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            **encoder_options,
        )
        self.head = RegressionHead(
            self.encoder.out_features, out_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.output_dropout = _check_rate("output_dropout", output_dropout)

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
        return_attention: bool = False,
    ) -> Array | tuple[Array, Array]:
        return self._forward(xs, lengths, mask, dropout_key, return_attention)


class SequenceTagger(nnx.Module):
    """LSTM -> linear at every step: one set of tag logits per step (sequence labelling).

    Logits at padded steps are zero. Options as :class:`SequenceClassifier`
    (no pooling); ``output_dropout`` acts on every step's LSTM output.

    Shapes:
      xs: (B, T, in_features)  ->  logits: (B, T, num_tags)

    >>> model = SequenceTagger(3, 8, 5, bidirectional=True, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 6, 3)), lengths=jnp.array([6, 2])).shape
    (2, 6, 5)
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        num_tags: int,
        *,
        output_dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **rnn_options: Any,
    ):
        self.rnn = Recurrent(
            in_features, hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs, **rnn_options
        )
        self.head = ClassificationHead(
            self.rnn.out_features, num_tags, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.output_dropout = _check_rate("output_dropout", output_dropout)

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
    ) -> Array:
        k_lstm, k_out = _split(dropout_key)
        hs, _ = self.rnn(xs, lengths=lengths, mask=mask, dropout_key=k_lstm)
        logits = self.head(_dropout(hs, self.output_dropout, k_out))
        if lengths is None and mask is None:
            return logits
        m = sequence_mask(hs.shape[:-1], lengths=lengths, mask=mask)[..., None]  # (B, T, 1)
        return jnp.where(m, logits, jnp.zeros_like(logits))


class SiameseMatcher(nnx.Module):
    """One shared encoder for both inputs -> pooled vectors -> similarity score.

    ``similarity`` is ``"cosine"`` or ``"dot"``; ``learn_scale=True`` learns
    a positive scale (inverse temperature) starting at ``init_scale`` (see
    :class:`~jlstm.nn.MatchingHead`). Other options as
    :class:`SequenceClassifier`. Without dropout the score is symmetric:
    ``model(a, b) == model(b, a)``. The two inputs may have different T.

    Shapes:
      xs_a: (B, T_a, in_features), xs_b: (B, T_b, in_features)  ->  scores: (B,)
      encode: (B, T, in_features)  ->  (B, out_features)

    >>> model = SiameseMatcher(3, 8, similarity="cosine", pooling="mean", rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 5, 3)), jnp.ones((2, 4, 3)), lengths_b=jnp.array([4, 1])).shape
    (2,)
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        similarity: str = "cosine",
        learn_scale: bool = False,
        init_scale: float = 1.0,
        output_dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **encoder_options: Any,
    ):
        self.head = MatchingHead(
            similarity, learn_scale=learn_scale, init_scale=init_scale, param_dtype=param_dtype
        )
        self.encoder = SequenceEncoder(
            in_features,
            hidden_size,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            **encoder_options,
        )
        self.output_dropout = _check_rate("output_dropout", output_dropout)

    @property
    def out_features(self) -> int:
        return self.encoder.out_features

    def encode(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
    ) -> Array:
        """The pooled vector of each sequence, (B, out_features)."""
        k_lstm, k_out = _split(dropout_key)
        pooled, _ = self.encoder(xs, lengths=lengths, mask=mask, dropout_key=k_lstm)
        return _dropout(pooled, self.output_dropout, k_out)

    def __call__(
        self,
        xs_a: Array,
        xs_b: Array,
        *,
        lengths_a: Array | None = None,
        lengths_b: Array | None = None,
        mask_a: Array | None = None,
        mask_b: Array | None = None,
        dropout_key: Array | None = None,
    ) -> Array:
        xs_a, xs_b = jnp.asarray(xs_a), jnp.asarray(xs_b)
        if xs_a.shape[:-2] != xs_b.shape[:-2]:
            raise ValueError(
                "xs_a and xs_b must have the same batch shape; got shapes "
                f"{xs_a.shape} and {xs_b.shape}"
            )
        k_a = k_b = None
        if dropout_key is not None:
            k_a, k_b = jax.random.split(dropout_key)
        a = self.encode(xs_a, lengths=lengths_a, mask=mask_a, dropout_key=k_a)
        b = self.encode(xs_b, lengths=lengths_b, mask=mask_b, dropout_key=k_b)
        return self.head(a, b)


class CharLM(nnx.Module):
    """Character (token) language model: embedding -> LSTM -> per-step logits.

    ``__call__(tokens, *, initial_state=None, lengths=None, mask=None,
    dropout_key=None)`` returns ``(logits, final_state)``; the final state is
    what truncated backpropagation through time carries to the next chunk
    (``initial_state``). Logits at padded steps are zero.
    :meth:`generate` samples a continuation, one step at a time, carrying the
    recurrent state instead of re-running the prefix.

    Shapes:
      tokens: (B, T) int  ->  logits: (B, T, vocab_size)
      initial_state, final_state .h, .c: (num_layers, B, hidden_size)

    >>> lm = CharLM(10, 16, embed_dim=8, rngs=nnx.Rngs(0))
    >>> logits, state = lm(jnp.zeros((2, 7), jnp.int32))
    >>> logits.shape, state.h.shape
    ((2, 7, 10), (1, 2, 16))
    >>> lm.generate(jnp.array([1, 2, 3]), 5, temperature=0.0).shape
    (5,)
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        *,
        embed_dim: int = 64,
        output_dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **rnn_options: Any,
    ):
        if isinstance(vocab_size, bool) or int(vocab_size) != vocab_size or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer; got {vocab_size!r}")
        if rnn_options.get("bidirectional"):
            raise ValueError("CharLM predicts the next token: it cannot be bidirectional")
        self.embed = nnx.Embed(vocab_size, embed_dim, param_dtype=param_dtype, rngs=rngs)
        self.rnn = Recurrent(
            embed_dim, hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs, **rnn_options
        )
        self.head = ClassificationHead(
            self.rnn.out_features, vocab_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.vocab_size = vocab_size
        self.output_dropout = _check_rate("output_dropout", output_dropout)

    def initial_state(self, batch_size: int) -> Any:
        """Zero h and c, (num_layers, batch_size, hidden_size)."""
        return self.rnn.initial_state(batch_size)

    def __call__(
        self,
        tokens: Array,
        *,
        initial_state: Any = None,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
    ) -> tuple[Array, Any]:
        tokens = _check_tokens(tokens, "tokens", self.vocab_size)
        k_lstm, k_out = _split(dropout_key)
        hs, final = self.hidden_states(
            tokens, initial_state=initial_state, lengths=lengths, mask=mask, dropout_key=k_lstm
        )
        logits = self.head(_dropout(hs, self.output_dropout, k_out))  # (B, T, V)
        if lengths is not None or mask is not None:
            m = sequence_mask(tokens.shape, lengths=lengths, mask=mask)[..., None]
            logits = jnp.where(m, logits, jnp.zeros_like(logits))
        return logits, final

    def hidden_states(
        self,
        tokens: Array,
        *,
        initial_state: Any = None,
        lengths: Array | None = None,
        mask: Array | None = None,
        dropout_key: Array | None = None,
    ) -> tuple[Array, Any]:
        """The top layer's hidden states, which the head turns into logits, and the
        final state: ``(hs (B, T, hidden_size), final_state)``. What a cache over
        the hidden states (:mod:`jlstm.cache`) keys on."""
        tokens = _check_tokens(tokens, "tokens", self.vocab_size)
        xs = self.embed(tokens)  # (B, T, E)
        return self.rnn(
            xs, lengths=lengths, mask=mask, initial_state=initial_state, dropout_key=dropout_key
        )

    def generate(
        self,
        prompt: Array,
        num_steps: int,
        *,
        temperature: float = 1.0,
        key: Array | None = None,
    ) -> Array:
        """Sample ``num_steps`` tokens after ``prompt``; returns the new tokens only.

        The prompt runs once through the model; then each step samples a
        token from ``softmax(logits / temperature)`` and feeds it back with
        the carried LSTM state (a ``lax.scan``, so the cost per token does not
        grow with the text). ``temperature=0`` is greedy decoding (argmax; no
        ``key`` needed) and must be a Python number; under ``jax.jit`` make
        ``num_steps`` and ``temperature`` static.

        Shapes:
          prompt: (T0,) or (B, T0) int  ->  (num_steps,) or (B, num_steps) int32
        """
        prompt = jnp.asarray(prompt)
        single = prompt.ndim == 1
        prompt = _check_tokens(prompt[None] if single else prompt, "prompt", self.vocab_size)
        if prompt.shape[1] < 1:
            raise ValueError(f"prompt must hold at least one token; got shape {prompt.shape}")
        if int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps must be a non-negative integer; got {num_steps!r}")
        greedy = isinstance(temperature, int | float) and temperature == 0
        if isinstance(temperature, int | float) and temperature < 0:
            raise ValueError(f"temperature must be >= 0; got {temperature!r}")
        if not greedy and key is None:
            raise ValueError("generate needs a key to sample when temperature > 0")

        logits, state = self(prompt)

        def choose(logits: Array, k: Array | None) -> Array:
            if greedy:
                return jnp.argmax(logits, axis=-1).astype(jnp.int32)
            scaled = logits.astype(jnp.float32) / temperature
            return jax.random.categorical(k, scaled, axis=-1).astype(jnp.int32)

        def step(carry, k):
            state, logits = carry
            token = choose(logits, k)  # (B,)
            next_logits, state = self(token[:, None], initial_state=state)
            return (state, next_logits[:, 0]), token

        keys = None if greedy else jax.random.split(key, num_steps)
        _, tokens = jax.lax.scan(step, (state, logits[:, -1]), keys, length=num_steps)
        tokens = tokens.T  # (B, num_steps)
        return tokens[0] if single else tokens


def _check_tokens(tokens: Array, name: str, vocab_size: int) -> Array:
    """(batch, time) integer token ids. Concrete ids outside [0, vocab_size) are an error;
    under ``jax.jit`` they are not checked (an embedding lookup then clamps them)."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"{name} must be (batch, time) token ids; got shape {tokens.shape}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"{name} must have an integer dtype; got {tokens.dtype}")
    try:
        values = np.asarray(tokens)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return tokens
    if values.size and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(
            f"{name} must lie in [0, vocab_size={vocab_size}); got values from "
            f"{values.min()} to {values.max()}"
        )
    return tokens
