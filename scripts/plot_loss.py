#!/usr/bin/env python
"""Plot the prior's training loss to docs/prior-loss.png.

    python scripts/plot_loss.py [LOSS_CSV] [PNG]

LOSS_CSV defaults to docs/prior-loss.csv, the committed copy of a run's
runs/prior/loss.csv (runs/ does not outlive a session; the weights and this
log do).
"""
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/prior-loss.csv")
out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/prior-loss.png")
rows = list(csv.DictReader(log.open()))
steps = [int(r["step"]) for r in rows]
loss = [float(r["loss"]) for r in rows]
minutes = [float(r["elapsed_s"]) / 60 for r in rows]
fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
ax.plot(steps, loss)
ax.set_yscale("log")
ax.set_xlabel("optimiser step (batch and crop size per phase: see the model card)")
ax.set_ylabel("ε-MSE (running mean)")
span = f"steps {steps[0]}–{steps[-1]}" if steps[0] > 100 else f"{steps[-1]} steps"
ax.set_title(f"vr-pixel-small training: {span}, {minutes[-1]:.0f} min in all on 2 CPU cores", fontsize=10)
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(out)
print(out)
