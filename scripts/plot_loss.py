#!/usr/bin/env python
"""Plot the prior's training loss (runs/prior/loss.csv) to docs/prior-loss.png."""
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/prior/loss.csv")
out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/prior-loss.png")
rows = list(csv.DictReader(log.open()))
steps = [int(r["step"]) for r in rows]
loss = [float(r["loss"]) for r in rows]
minutes = [float(r["elapsed_s"]) / 60 for r in rows]
fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
ax.plot(steps, loss)
ax.set_yscale("log")
ax.set_xlabel("optimiser step (batch 16 of 64x64 crops)")
ax.set_ylabel("ε-MSE (running mean)")
ax.set_title(f"vr-pixel-small training: {steps[-1]} steps, {minutes[-1]:.0f} min on 2 CPU cores")
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(out)
print(out)
