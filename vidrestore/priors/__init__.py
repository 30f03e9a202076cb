"""Priors: the Denoiser protocol and the models that implement it."""
from vidrestore.priors.base import Denoiser, LatentPrior, from_model, split_prediction, to_model
from vidrestore.priors.latent import LatentDenoiser
from vidrestore.priors.loading import (
                                      DEFAULT_MODEL,
                                      embedded_models,
                                      load_pixel_prior,
                                      load_prior,
                                      model_kind,
                                      resolve_model_location,
)
from vidrestore.priors.pixel import PixelDenoiser

__all__ = ["Denoiser", "LatentDenoiser", "LatentPrior", "PixelDenoiser", "DEFAULT_MODEL", "embedded_models",
           "from_model", "load_pixel_prior", "load_prior", "model_kind", "resolve_model_location", "split_prediction",
           "to_model"]
