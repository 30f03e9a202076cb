"""vidrestore: video inverse problems solved with pretrained image diffusion models."""

__version__ = "0.1.0"
