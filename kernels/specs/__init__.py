"""The registry's entries, one module a family of algorithms; ``kernels/registry.py``
assembles them into :data:`~bpttbench.registry.ALGORITHMS` and is the one door the
harness goes through.

- ``sizes.py``: the axes and default sizes, the problems a size builds, the
  exponent tables (what every family shares);
- ``presets.py``: how a preset's sweep is written, why the sweeps sit where they
  do, and the sweeps several algorithms share;
- ``exact.py``: BPTT, truncated BPTT, RTRL and the MLP's backprop;
- ``checkpointed.py``: checkpointed BPTT, the slot count c as a size;
- ``online.py``: UORO, KF-RTRL, R-KF, SnAp-1, SnAp-2 and RFLO;
- ``gated.py``: the cell as a size, and the GRU's and LSTM's sweeps;
- ``weight_reads.py``: the weights a call reads whatever its batch (the time
  model's B-independent part).
"""
