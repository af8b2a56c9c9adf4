"""The LSTM's fast implementations: :func:`jlstm.fused.layer.run`.

- :mod:`jlstm.fused.loops`: the forward, tangent and adjoint loops as ``lax.scan``;
- :mod:`jlstm.fused.primitives`: those loops as JAX primitives with every rule;
- :mod:`jlstm.fused.kernel`: the C++ CPU kernel (build, verify, load);
- :mod:`jlstm.fused.layer`: the layer as a ``custom_jvp`` over the primitives.
"""
