"""Gradient quality against cost: ``bpttbench quality`` (issue 13).

What each algorithm buys for what it costs, on the tasks with a
dependency-length knob (``bpttbench.tasks``; THEORY.md, "Tasks with a
dependency-length knob" and "Gradient quality measures"). Modules:

- ``settings``: an algorithm with its options (a *setting*), the networks
  of each cell (Elman, GRU, LSTM; the recurrent matrix rescaled to a spectral
  radius), the tasks;
- ``cells``: the three cells in NumPy, a step forward and the state's error a
  step back, and the linearised per-step rate of each;
- ``fidelity``: cosine, relative error, norm ratio against the exact gradient
  on the same weights and trajectory; bias apart from spread for the
  stochastic rules;
- ``vanishing``: norm(dL_T/ds_t) against the lag per cell, and the fitted
  per-step rate against the linearised prediction;
- ``learning``: online training through ``bpttbench.stream`` (the gated cells
  through the truncated-BPTT stream), final loss
  against the task's baselines, steps to a threshold, time per step, peak
  memory, divergence;
- ``runner``: the plan of a preset, the ``quality`` table of the results store
  (resumable, a row per key, one transaction per row), the command;
- ``section`` (the report's Quality section) lives in ``bench/quality_report.py``.
"""
