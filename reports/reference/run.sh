#!/bin/sh
# The reference run, as it was made: one store, on a quiet machine, each step a
# resumable sweep (run the script again to resume). Then the report.
set -e
DB=reports/reference/reference.sqlite
bpttbench sweep --preset full --min-time 1.5 --algorithms bptt tbptt rtrl checkpointed_bptt --db "$DB"
bpttbench sweep --preset full --min-time 1.5 --algorithms uoro kf_rtrl r_kf snap1 snap2 rflo --db "$DB"
bpttbench quality --preset full --db "$DB"
bpttbench peers --db "$DB" --dtype float64 float32
bpttbench sweep --preset full --min-time 1.5 --algorithms backprop --db "$DB"
# After the checkpointed kernel's segment executor: its cells measured again
bpttbench sweep --preset full --min-time 1.5 --algorithms checkpointed_bptt --remeasure --db "$DB"
# After the gated cells' vectorised pointwise steps: their sweeps (gated.toml, the full
# preset's GRU and LSTM sweeps of bptt, tbptt and rtrl, and the Elman RTRL n sweep at
# the gated sizes) measured again, and the gated PyTorch peers
bpttbench sweep --grid reports/reference/gated.toml --min-time 1.5 --remeasure --db "$DB"
# The longer B sweeps and the memory-along-n sweeps (new cells only)
bpttbench sweep --preset full --min-time 1.5 --algorithms uoro kf_rtrl r_kf snap1 rflo backprop checkpointed_bptt --axes B --db "$DB"
bpttbench sweep --preset full --min-time 1.5 --algorithms bptt tbptt checkpointed_bptt --axes n --db "$DB"
bpttbench peers --tools pytorch --cells gru lstm --db "$DB"
# the online rules' performance targets, stored beside the store for the report
python -m bpttbench.bench.online_efficiency --targets --n 64,256 --T 200 --rounds 9 \
    --json reports/reference/online_targets.json
bpttbench report --db "$DB" --benchmark-json reports/reference/benchmark-reference.json \
    --out reports/reference
