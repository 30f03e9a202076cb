"""Print vidrestore's memory / time estimates for SDXL and SD 1.5 at the published VISION-XL setting.

The networks are built from their published architectures on the meta device
(no weights, nothing downloaded); see vidrestore/priors/estimate.py. Time needs
a device rate: the GEMM rate measured here, or --tflops for another device
(e.g. 165 for an RTX 4090's dense fp16 tensor cores).

    .venv/bin/python scripts/estimate_latent.py --tflops 165
"""
from __future__ import annotations

import argparse

import torch

from vidrestore.priors.estimate import estimate, latent_network_cost
from vidrestore.samplers import latent_timesteps

VAE = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
       "up_block_types": ["UpDecoderBlock2D"] * 4, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32}
SDXL_UNET = {"addition_embed_type": "text_time", "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
             "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "layers_per_block": 2,
             "projection_class_embeddings_input_dim": 2816, "transformer_layers_per_block": [1, 2, 10],
             "use_linear_projection": True, "sample_size": 128}
SD15_UNET = {"attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
             "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "layers_per_block": 2, "sample_size": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=None, help="device GEMM rate in TFLOP/s (default: measure)")
    parser.add_argument("--frames", type=int, default=25)
    args = parser.parse_args()
    steps = len(latent_timesteps(25, 1000, "inversion", 300))
    for name, unet, sdxl, (h, w) in (("SDXL", SDXL_UNET, True, (768, 1280)), ("SDXL", SDXL_UNET, True, (1024, 1024)),
                                     ("SD 1.5", SD15_UNET, False, (512, 512)), ("SD 1.5", SD15_UNET, False, (720, 1280))):
        for dtype, mb in ((torch.float16, 1), (torch.float16, 4)):
            cost = latent_network_cost(unet, VAE, h, w, dtype, mb, sdxl)
            est = estimate(cost, height=h, width=w, window_frames=args.frames,
                           unet_passes=steps + (steps - 1) / args.frames, vae_passes=steps - 0.5,
                           device=torch.device("cuda"), dtype=dtype,
                           rate=None if args.tflops is None else args.tflops * 1e12)
            print(f"{name} {w}x{h} micro-batch {mb}: {est.memory_gib:.1f} GiB (weights {est.weights_gib:.1f}, "
                  f"activations {est.activations_gib:.1f}, clip {est.clip_gib:.1f}); "
                  f"{est.tflop_per_frame:.0f} TFLOP/frame, {est.seconds_per_frame:.2f} s/frame, "
                  f"{est.seconds_per_frame * args.frames / 60:.1f} min for {args.frames} frames")


if __name__ == "__main__":
    main()
