"""TAEF2, the tiny FLUX.2 autoencoder (TAESD's FLUX.2 variant, MIT), rebuilt in Keras from the
numpy weights in ../shared/weights, to make aligned fakes: a real photo passed through a
diffusion decoder differs from its real only by the decoder's fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parents[3] / "shared" / "weights"
LATENT = 32  # FLUX.2's latent channels; the latent is 1/8 of the image on each side
STRIDE = 8
# Sequential indices of the architecture (taesd.py's Encoder/Decoder): where there is no weight,
# the layer is a Clamp (decoder 0), a ReLU (decoder 2) or a nearest 2x upsample.
_DECODER_CLAMP, _DECODER_RELU = 0, 2


def load_weights(part: str, weights_dir: Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """{layer index: {tail key: float32 array}} of taef2_<part>.npz (stored as float16)."""
    path = (weights_dir or WEIGHTS_DIR) / f"taef2_{part}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the TAEF2 weights come with ../shared/weights")
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as z:
        for key in z.files:
            index, _, tail = key.partition(".")
            out.setdefault(index, {})[tail] = z[key].astype(np.float32)
    return out


def _conv(x, w: np.ndarray, b: np.ndarray | None, stride: int = 1, name: str = ""):
    """PyTorch Conv2d(k, padding=k//2): zero padding on every side, then a valid convolution
    (Keras' 'same' pads asymmetrically at stride 2, which would shift the output)."""
    import keras

    k = w.shape[-1]
    if k > 1:
        x = keras.layers.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
    layer = keras.layers.Conv2D(w.shape[0], k, strides=stride, use_bias=b is not None,
                                name=name)
    y = layer(x)
    kernel = np.transpose(w, (2, 3, 1, 0))  # OIHW -> HWIO
    layer.set_weights([kernel] if b is None else [kernel, b])
    return y


def _block(x, p: dict[str, np.ndarray], name: str):
    """taesd.Block with the FLUX.2 mid-block branch: x += pool(x); relu(conv(x) + x)."""
    import keras

    if "pool.0.weight" in p:
        g = _conv(x, p["pool.0.weight"], None, name=f"{name}_pool0")
        norm = keras.layers.GroupNormalization(4, epsilon=1e-5, name=f"{name}_gn")
        g = norm(g)
        norm.set_weights([p["pool.1.weight"], p["pool.1.bias"]])
        g = keras.layers.ReLU()(g)
        x = keras.layers.Add()([x, _conv(g, p["pool.3.weight"], None, name=f"{name}_pool3")])
    y = x
    for i in (0, 2, 4):
        y = _conv(y, p[f"conv.{i}.weight"], p[f"conv.{i}.bias"], name=f"{name}_c{i}")
        if i < 4:
            y = keras.layers.ReLU()(y)
    return keras.layers.ReLU()(keras.layers.Add()([y, x]))  # n_in == n_out: the skip is identity


def _sequential(x, weights: dict, n: int, decoder: bool, prefix: str):
    import keras
    from keras import ops

    for i in range(n):
        p = weights.get(str(i))
        name = f"{prefix}{i}"
        if p is None:
            if decoder and i == _DECODER_CLAMP:
                x = keras.layers.Lambda(lambda t: ops.tanh(t / 3.0) * 3.0, name=name)(x)
            elif decoder and i == _DECODER_RELU:
                x = keras.layers.ReLU(name=name)(x)
            else:
                x = keras.layers.UpSampling2D(2, interpolation="nearest", name=name)(x)
        elif "conv.0.weight" in p:
            x = _block(x, p, name)
        else:
            # The encoder's bias-free convolutions are its stride-2 downsamplers.
            stride = 2 if (not decoder and "bias" not in p) else 1
            x = _conv(x, p["weight"], p.get("bias"), stride, name=name)
    return x


def build(weights_dir: Path | None = None):
    """(encoder, decoder) Keras models: RGB in [0, 1] -> latent -> RGB (unclamped)."""
    import keras

    enc_w, dec_w = load_weights("encoder", weights_dir), load_weights("decoder", weights_dir)
    n_enc, n_dec = max(map(int, enc_w)) + 1, max(map(int, dec_w)) + 1
    x = keras.Input((None, None, 3))
    encoder = keras.Model(x, _sequential(x, enc_w, n_enc, False, "enc"), name="taef2_encoder")
    z = keras.Input((None, None, LATENT))
    decoder = keras.Model(z, _sequential(z, dec_w, n_dec, True, "dec"), name="taef2_decoder")
    return encoder, decoder


def precision() -> str:
    """"bf16" where the CPU multiplies bfloat16 in AMX tiles (2.5x faster here, 53 dB from the
    float32 result), else "float32"."""
    from detector.runtimes.choice import cpu_flags

    return "bf16" if "amx_bf16" in cpu_flags() else "float32"


class Autoencoder:
    """Round trips of uint8 RGB images through TAEF2 (any size: padded to a multiple of 8).
    fast=True computes in bfloat16 where precision() allows; the default is float32."""

    def __init__(self, weights_dir: Path | None = None, fast: bool = False):
        import keras

        self.precision = precision() if fast else "float32"
        before = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16" if self.precision == "bf16" else "float32")
        try:
            self.encoder, self.decoder = build(weights_dir)
        finally:
            keras.config.set_dtype_policy(before)

    def reconstruct(self, rgb: np.ndarray) -> np.ndarray:
        """The HxWx3 uint8 image after encoding and decoding, same size."""
        return self.reconstruct_batch(rgb[None])[0]

    def reconstruct_batch(self, batch: np.ndarray) -> np.ndarray:
        """reconstruct() for an (N,H,W,3) uint8 batch of one size."""
        h, w = batch.shape[1:3]
        ph, pw = -h % STRIDE, -w % STRIDE
        # Reflection keeps the border's statistics; the padding is cut off again after.
        x = np.pad(batch.astype(np.float32) / 255.0, ((0, 0), (0, ph), (0, pw), (0, 0)),
                   mode="reflect")
        latent = self.encoder.predict_on_batch(x)
        y = np.asarray(self.decoder.predict_on_batch(latent), np.float32)[:, :h, :w]
        return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
