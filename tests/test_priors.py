import json

import pytest
import torch

from vidrestore.errors import ModelError
from vidrestore.priors import PixelDenoiser, embedded_models, load_pixel_prior, resolve_model_location
from vidrestore.priors.base import from_model, split_prediction, to_model

from helpers import save_tiny_model, tiny_unet


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_denoiser_contract_on_tiny_unet(prediction_type):
    unet, scheduler = tiny_unet(prediction_type)
    denoiser = PixelDenoiser(unet, scheduler, micro_batch=2)
    x_t = torch.randn(3, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    for t in (0, 250, 999):
        eps, x0 = denoiser.tweedie(x_t, t)
        assert eps.shape == x0.shape == x_t.shape
        a = float(denoiser.alphas_cumprod[t])
        assert torch.allclose(a ** 0.5 * x0 + (1 - a) ** 0.5 * eps, x_t, atol=1e-4)


def test_split_prediction_rejects_unknown_type():
    with pytest.raises(ValueError):
        split_prediction(torch.zeros(1), torch.zeros(1), 0.5, "flow")


def test_range_conversion_round_trips():
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(from_model(to_model(x)), x)
    assert to_model(torch.zeros(1)).item() == -1 and to_model(torch.ones(1)).item() == 1


def test_odd_sizes_are_padded_and_cropped_back():
    unet, scheduler = tiny_unet()
    denoiser = PixelDenoiser(unet, scheduler)
    eps, x0 = denoiser.tweedie(torch.randn(1, 3, 13, 7), 500)
    assert eps.shape == (1, 3, 13, 7)


def test_micro_batching_does_not_change_the_result():
    unet, scheduler = tiny_unet()
    x = torch.randn(5, 3, 16, 16)
    a = PixelDenoiser(unet, scheduler, micro_batch=1).tweedie(x, 300)[0]
    b = PixelDenoiser(unet, scheduler, micro_batch=5).tweedie(x, 300)[0]
    assert torch.allclose(a, b, atol=1e-5)


class _IdentityNet(torch.nn.Module):
    """Stands in for a UNet: returns its input, so tiling must reproduce the input exactly."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"block_out_channels": (8, 16)})()

    def forward(self, x, t):
        return type("Out", (), {"sample": x})()


def test_tiles_blend_without_seams():
    _, scheduler = tiny_unet()
    denoiser = PixelDenoiser(_IdentityNet(), scheduler, tile=32, tile_overlap=8)
    x = torch.rand(2, 3, 70, 90)
    out = denoiser._tiled_network(x, 10)
    assert torch.allclose(out, x, atol=1e-6)


class _ZeroPaddedBlur(_IdentityNet):
    """A local filter with zero padding: darkens every tile's own border, as a real UNet does."""

    def forward(self, x, t):
        return type("Out", (), {"sample": torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2,
                                                                          count_include_pad=True)})()


def test_tile_borders_leave_no_visible_seam_on_a_constant_image():
    _, scheduler = tiny_unet()
    tiled = PixelDenoiser(_ZeroPaddedBlur(), scheduler, tile=32, tile_overlap=16)
    x = torch.full((1, 3, 64, 96), 0.5)
    out = tiled._tiled_network(x, 10)
    inner = out[..., 2:-2, 2:-2]  # the frame's own border is darkened by the filter itself
    assert (inner - 0.5).abs().max() < 0.005


def test_load_local_folder(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    prior = load_pixel_prior(str(folder), torch.device("cpu"))
    assert isinstance(prior, PixelDenoiser)
    assert prior.num_train_timesteps == 1000


def test_model_none_means_no_prior():
    assert load_pixel_prior("none", torch.device("cpu")) is None


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_pixel_prior(str(tmp_path / "nope" / "model"), torch.device("cpu"))


def test_corrupt_weights_are_a_clear_error(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot load model"):
        load_pixel_prior(str(folder), torch.device("cpu"))


def test_pickled_checkpoints_are_refused(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelError, match="safetensors"):
        load_pixel_prior(str(folder), torch.device("cpu"))


def test_unknown_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="no network"):
        load_pixel_prior("someone/no-such-model-xyz", torch.device("cpu"))


def test_latent_pipelines_are_refused_clearly(tmp_path):
    folder = tmp_path / "sd"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "vae": ["diffusers", "AutoencoderKL"]}))
    with pytest.raises(ModelError, match="latent"):
        load_pixel_prior(str(folder), torch.device("cpu"))


def test_shipped_model_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "vr-pixel-small" in embedded_models()
    location = resolve_model_location(None)
    assert location.name == "vr-pixel-small"
    prior = load_pixel_prior(None, torch.device("cpu"))
    x = torch.randn(1, 3, 24, 24)
    eps, x0 = prior.tweedie(x, 100)
    a = float(prior.alphas_cumprod[100])
    assert torch.allclose(a ** 0.5 * x0 + (1 - a) ** 0.5 * eps, x, atol=1e-4)
    assert sum(p.numel() for p in prior.unet.parameters()) > 1_000_000


def test_dtype_auto_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from vidrestore import runtime

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_bf16", lambda native=native: native)
        assert runtime.resolve_dtype("auto", cpu) == (torch.bfloat16 if native else torch.float32)
        assert runtime.resolve_dtype("bf16", cpu) == (torch.bfloat16 if native else torch.float32)
        assert runtime.resolve_dtype("fp16", cpu) == torch.float32  # fp16 convolutions are slow on CPU
        assert runtime.resolve_dtype("fp32", cpu) == torch.float32
    cuda = torch.device("cuda")  # not opened: the choice only reads the device type
    assert runtime.resolve_dtype("auto", cuda) == torch.float32
    assert runtime.resolve_dtype("fp16", cuda) == torch.float16
    # latent pipelines stay fp32 on CPU whatever was asked; elsewhere they take the asked dtype
    assert runtime.prior_dtype(torch.bfloat16, cpu, "sd") == torch.float32
    assert runtime.prior_dtype(torch.bfloat16, cpu, "pixel") == torch.bfloat16
    assert runtime.prior_dtype(torch.float16, cuda, "sdxl") == torch.float16


def test_the_network_runs_channels_last_and_gives_the_same_prediction():
    unet, scheduler = tiny_unet()
    x = torch.randn(2, 3, 16, 16)
    t = torch.full((2,), 300)
    with torch.no_grad():
        expected = unet(x, t).sample  # before PixelDenoiser converts the module
    denoiser = PixelDenoiser(unet, scheduler)
    assert denoiser.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    eps, _ = denoiser.tweedie(x, 300)
    assert eps.is_contiguous() and torch.allclose(eps, expected, atol=1e-5)


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no native bf16 on this CPU")
def test_the_shipped_prior_in_bf16_stays_close_to_fp32():
    """bf16 where the CPU has it (`--dtype auto`): the clean estimate at the superres preset's t moves by well
    under one 8-bit level on average."""
    x0 = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    fp32 = load_pixel_prior(None, torch.device("cpu"))
    bf16 = load_pixel_prior(None, torch.device("cpu"), torch.bfloat16)
    a = float(fp32.alphas_cumprod[100])
    x_t = a ** 0.5 * (2 * x0 - 1) + (1 - a) ** 0.5 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    ref, got = fp32.tweedie(x_t, 100)[1], bf16.tweedie(x_t, 100)[1]
    assert got.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert float((got - ref).abs().mean()) < 0.5 / 255 * 2  # x̂0 in [-1, 1]
