"""Cross-frame attention: every frame's self-attention also looks at an anchor frame (Text2Video-Zero).

`CrossFrameAttention` is a diffusers attention processor. A `CrossFrameControl`
shared by all processors of a UNet (and its ControlNet) says what a call does:

    "off"      plain self-attention (a frame edited alone);
    "record"   plain self-attention, and each layer keeps its input tokens: the anchor's pass;
    "attend"   out = (1 − w) · Attn(q, k_self, v_self) + w · Attn(q, k_anchor, v_anchor), the anchor's
               tokens being those the last "record" call kept (w = `weight`; 1 = Text2Video-Zero).

Cross-attention to the prompt is never changed. The anchor is run first at every step, as its own batch
(its unconditional and conditional rows with classifier-free guidance); the frames after it take its
recorded tokens, repeated over each half of their batch.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

MODES = ("off", "record", "attend")


@dataclass
class CrossFrameControl:
    """What the processors do on the next network call (see the module docstring)."""

    weight: float = 0.0
    mode: str = "off"

    def set(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown cross-frame mode {mode!r}; choose from {', '.join(MODES)}")
        self.mode = mode


class CrossFrameAttention:
    """A diffusers attention processor (the steps of `AttnProcessor2_0`) with an anchor for self-attention."""

    def __init__(self, control: CrossFrameControl):
        self.control = control
        self.anchor: torch.Tensor | None = None   # (rows, tokens, channels) kept by the last "record" call

    def _attend(self, attn, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, heads = query.shape[0], attn.heads
        key, value = attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // heads
        q = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        k = key.view(batch, -1, heads, head_dim).transpose(1, 2)
        v = value.view(batch, -1, heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        return out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs
                 ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        cross = encoder_hidden_states is not None
        length = (encoder_hidden_states if cross else hidden_states).shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if cross:
            context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else \
                encoder_hidden_states
            out = self._attend(attn, query, context, attention_mask)
        else:
            mode, weight = self.control.mode, float(self.control.weight)
            if mode == "record":
                self.anchor = hidden_states.detach()
            out = self._attend(attn, query, hidden_states, attention_mask)
            if mode == "attend" and weight > 0:
                if self.anchor is None:
                    raise RuntimeError("cross-frame attention: no anchor was recorded before an 'attend' call")
                rows = self.anchor.shape[0]  # 1, or 2 with classifier-free guidance (unconditional, conditional)
                anchor = self.anchor.repeat_interleave(batch // rows, dim=0).to(hidden_states.dtype)
                anchored = self._attend(attn, query, anchor, attention_mask)
                out = anchored if weight >= 1 else torch.lerp(out, anchored, weight)
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@contextmanager
def cross_frame_attention(models: list[torch.nn.Module], control: CrossFrameControl) -> Iterator[None]:
    """Install `CrossFrameAttention` on every attention layer of `models` for the block; the models'
    own processors are put back afterwards (a loaded model is shared by the windows of a run)."""
    saved = [(m, m.attn_processors) for m in models]
    try:
        for model in models:
            model.set_attn_processor({name: CrossFrameAttention(control) for name in model.attn_processors})
        yield
    finally:
        for model, processors in saved:
            model.set_attn_processor(processors)
