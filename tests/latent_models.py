"""Tiny randomly initialised Stable Diffusion / SDXL pipelines, saved in diffusers layout (nothing downloaded)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

VOCAB_CHARS = "abcdefghijklmnopqrstuvwxyz"


def write_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer from a tiny vocab.json + merges.txt: one token per letter, no merges."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for i, c in enumerate(VOCAB_CHARS):
        vocab[c] = 3 + i
        vocab[c + "</w>"] = 3 + len(VOCAB_CHARS) + i
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16,
                              pad_token="!")
    tokenizer.save_pretrained(folder)


def save_tiny_latent_pipeline(folder: Path, kind: str = "sd", *, vae_sample_size: int = 256, seed: int = 0,
                              prediction_type: str = "epsilon") -> Path:
    """A StableDiffusion(XL)Pipeline folder: VAE factor 4, 2-level UNet, 2-layer CLIP encoders, safetensors."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sdxl = kind == "sdxl"
    torch.manual_seed(seed)  # model init only; vidrestore itself never touches the global RNG
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=vae_sample_size, scaling_factor=0.5)
    text = CLIPTextConfig(vocab_size=3 + 2 * len(VOCAB_CHARS), hidden_size=16, intermediate_size=24,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16, projection_dim=16,
                          bos_token_id=0, eos_token_id=2, pad_token_id=1)
    encoders = {"text_encoder": CLIPTextModel(text)}
    cross = 16
    extra = {}
    if sdxl:
        encoders["text_encoder_2"] = CLIPTextModelWithProjection(text)
        cross = 32  # both encoders' hidden states, concatenated
        extra = {"addition_embed_type": "text_time", "addition_time_embed_dim": 4,
                 "projection_class_embeddings_input_dim": 16 + 6 * 4}
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64),
                                layers_per_block=1, cross_attention_dim=cross, attention_head_dim=8,
                                norm_num_groups=8, **extra)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1, prediction_type=prediction_type)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    index = {"_class_name": "StableDiffusionXLPipeline" if sdxl else "StableDiffusionPipeline",
             "_diffusers_version": "0.30.0", "vae": ["diffusers", "AutoencoderKL"],
             "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDIMScheduler"]}
    for name, encoder in encoders.items():
        encoder.save_pretrained(folder / name, safe_serialization=True)
        tok = name.replace("text_encoder", "tokenizer")
        write_tokenizer(folder / tok)
        index[name] = ["transformers", type(encoder).__name__]
        index[tok] = ["transformers", "CLIPTokenizer"]
    if sdxl:
        index["force_zeros_for_empty_prompt"] = True
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def save_tiny_controlnet(folder: Path, kind: str = "sd", seed: int = 1) -> Path:
    """A ControlNetModel matching `save_tiny_latent_pipeline`'s UNet (the VAE factor 4: the map is downsampled
    twice). Its zero-initialised output convolutions get random weights, so that the structure maps matter."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)  # model init only
    extra = {"addition_embed_type": "text_time", "addition_time_embed_dim": 4,
             "projection_class_embeddings_input_dim": 16 + 6 * 4} if kind == "sdxl" else {}
    net = ControlNetModel(in_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                          block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=8, norm_num_groups=8,
                          cross_attention_dim=32 if kind == "sdxl" else 16,
                          conditioning_embedding_out_channels=(8, 16, 16), **extra)
    for layer in [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]:
        torch.nn.init.normal_(layer.weight, std=0.05)
    net.save_pretrained(folder, safe_serialization=True)
    return folder
