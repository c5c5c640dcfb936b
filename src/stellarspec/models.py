"""The deep models as plain nn.Modules: the CNN baseline and the BERT-CNN hybrid.

Shapes: B spectra per batch, L pixels per spectrum, N tokens (patches), D = d_model,
P = patch width, C classes. Every classifier returns logits (B, C); softmax is in the loss.

BERT-CNN (Liu & Wang 2022): the spectrum is cut into fixed-width pixel patches, each patch is
embedded linearly and given a learned position, N Transformer encoder layers (the paper's
eqs. 1-5) mix the tokens, and a small CNN over the token axis classifies the token features.
MaskedPatchModel is the BERT-style pretext task: hide some patches, reconstruct their flux.

Table 2 of the paper names two hyperparameters of the networks, read here as follows:
- hidden_units: the width of the one hidden fully connected layer of the classifier, after the
  convolutions (SpectrumCNN: after the conv blocks over pixels; BertCNN: in CNNHead, after the
  convolution over the token axis). The encoder's own widths are its size (ENCODER_SIZES).
- dropout: the dropout on that hidden layer's output, before the last FC layer, in both
  models. The encoder has its own dropout (`encoder_dropout`, BERT's 0.1) on the embeddings,
  the attention weights and the sublayer outputs; Table 2's dropout is not applied there.

The input (`input`): 'minmax' is the dataset's flux, min-max normalised per spectrum as in the
paper; 'standardized' also standardises each pixel with the training rows' mean and scale
(PixelStandardizer, not in the paper).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data.preprocess import INPUTS, MIN_PIXEL_SCALE, pixel_standardization

# Named BertEncoder sizes (the `encoder` setting). tiny is the earlier default; mini and small
# are BERT-mini and BERT-small (Turc et al. 2019: 4 layers of d_model 256 / 512 with 64-wide
# heads); micro is a 2-layer size cheap enough for the quick default. All cut the spectrum into
# 64-pixel patches (60 tokens on the 3840-pixel grid). Parameter counts on that grid, for the
# encoder alone and for BertCNN with the default head (hidden 256) and 4 classes (K):
#   size   layers  d_model  heads  d_ff   encoder parameters  BertCNN parameters
#   tiny   1       32       2      128    16,800              266,948
#   micro  2       64       2      256    108,160             361,380
#   mini   4       256      4      1024   3,191,808           3,463,460
#   small  4       512      8      2048   12,675,072          12,971,300
ENCODER_SIZES = {
    "tiny": dict(patch_width=64, d_model=32, n_heads=2, n_layers=1, d_ff=128),
    "micro": dict(patch_width=64, d_model=64, n_heads=2, n_layers=2, d_ff=256),
    "mini": dict(patch_width=64, d_model=256, n_heads=4, n_layers=4, d_ff=1024),
    "small": dict(patch_width=64, d_model=512, n_heads=8, n_layers=4, d_ff=2048),
}


def encoder_size(params: dict) -> dict:
    """The BertEncoder size keys that `params` sets: those of its named `encoder` size, or its
    own patch_width/d_model/n_heads/n_layers/d_ff; both at once is refused (ambiguous)."""
    name = params.get("encoder")
    if name is None:
        return {}
    if name not in ENCODER_SIZES:
        raise ValueError(f"unknown encoder size {name!r}; expected one of {sorted(ENCODER_SIZES)}")
    both = sorted(set(ENCODER_SIZES[name]) & set(params))
    if both:
        raise ValueError(f"encoder: {name} sets {both}; give either the named size or the keys")
    return dict(ENCODER_SIZES[name])


def pooled_length(length: int, n_blocks: int, pool: int) -> int:
    """Length after `n_blocks` of ('same' conv, max-pool of `pool`)."""
    for _ in range(n_blocks):
        length = length // pool
    return length


def stacked(x: torch.Tensor) -> bool:
    """Whether x is one model's slice of stacked candidates under torch.func.vmap."""
    return torch._C._functorch.is_batchedtensor(x)


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper random mask on the CPU.

    PyTorch's CPU dropout draws one 32-bit Mersenne-Twister number per element (bernoulli_),
    a quarter of a BERT-CNN training step here. This splits 64-bit draws into four 16-bit
    uniforms, several times faster (benchmarks/bench_kernels.py): the same keep-or-zero mask
    and 1 / (1 - p) scaling, with p rounded to a multiple of 1/65536 (0.1 -> 0.09999); on
    other devices the same from the device's generator. The rate is a buffer (`rate`, not
    saved in state dicts) and is what the mask uses: candidates stacked by torch.func
    (training/stacking.py) each bring their own, under vmap or one after another.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__(p, inplace)
        self.register_buffer("rate", torch.tensor(float(p)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The rate buffer, not `p`: stacked candidates bring their own (training/stacking.py),
        # under vmap or run one after another.
        return stacked_dropout(x, self.rate) if self.training else x


def stacked_dropout(x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Dropout at the rate in the 0-d tensor `rate` (Dropout's mask; under vmap, with
    randomness='different', each model draws its own), from 16-bit uniforms."""
    n_dropped = torch.round(rate.clamp(0, 1) * 65536)  # of the 65536 values of a 16-bit uniform
    bits = torch.randint(-2**63, 2**63 - 1, (-(-x.numel() // 4),), dtype=torch.int64,
                         device=x.device)
    uniform = bits.view(torch.int16)[:x.numel()].view(x.shape)  # on [-32768, 32767]
    keep = uniform >= n_dropped - 32768
    scale = torch.where(n_dropped < 65536, 65536 / (65536 - n_dropped), 0)
    return x * keep.to(x.dtype).mul_(scale)


class ConvBlocks(nn.Module):
    """(B, C_in, L) -> (B, channels[-1], L'): per entry of `channels`, a convolution along L
    ('same' padding for odd kernel sizes), ReLU and a max-pool of `pool`.

    Computed as conv -> max-pool -> ReLU, which gives the same values and gradients (max and
    ReLU commute) with the ReLU on 1/pool of the elements.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel_size: int, pool: int):
        super().__init__()
        self.pool = pool
        self.convs = nn.ModuleList()
        for out_channels in channels:
            self.convs.append(nn.Conv2d(in_channels, out_channels, (1, kernel_size),
                                        padding=(0, kernel_size // 2)))
            in_channels = out_channels
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The signal runs as a (B, C, 1, L) image in channels-last memory: there PyTorch's CPU
        # convolution and max-pool kernels vectorise over channels. On (B, C, L) with
        # nn.Conv1d/MaxPool1d a CNN training step took over twice as long, a third of it in
        # max-pool's index bookkeeping (benchmarks/README.md, B3).
        x = x.unsqueeze(2)  # (B, C_in, 1, L)
        # vmap (stacked candidates, training/stacking.py) cannot query memory formats
        if not stacked(x):
            x = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = F.relu(F.max_pool2d(conv(x), (1, self.pool)))  # (B, C, 1, L // pool)
        return x.squeeze(2)  # (B, C, L')


class PixelStandardizer(nn.Module):
    """The model's input transform (`input`). 'standardized': x -> (x - mean) / scale per pixel,
    mean and scale fitted once on training spectra (`fit`, preprocess.pixel_standardization,
    as the SVM's) and stored as buffers, so checkpoints and pretrained encoders carry them.
    'minmax': the identity, so the network sees the min-max flux as in the paper.

    'standardized' is not in the paper. Min-max spectra share a large common shape; subtracting
    it and scaling each pixel makes Adam's job easier (benchmarks/README.md measures by how much).
    """

    def __init__(self, n_pixels: int, input: str = "minmax", min_scale: float = MIN_PIXEL_SCALE):
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
        self.input, self.min_scale = input, min_scale
        self.enabled = input == "standardized"
        self.register_buffer("mean", torch.zeros(n_pixels))
        self.register_buffer("scale", torch.ones(n_pixels))

    @torch.no_grad()
    def fit(self, flux: torch.Tensor) -> "PixelStandardizer":
        if self.enabled:
            mean, scale = pixel_standardization(flux.cpu().numpy(), self.min_scale)
            self.mean.copy_(torch.from_numpy(mean))
            self.scale.copy_(torch.from_numpy(scale))
        return self

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        return (flux - self.mean) / self.scale if self.enabled else flux


class SpectrumCNN(nn.Module):
    """CNN baseline: conv/ReLU/max-pool blocks over pixels, then FC(hidden_units), ReLU,
    dropout, FC(C).

    Lean by default (3 blocks of 8/16/16 channels, pool 4: 2.4 MFLOP per 3840-pixel spectrum);
    hidden 128 and dropout 0.5 are the paper's (Table 2), both on the FC layer."""

    def __init__(self, n_pixels: int, n_classes: int, channels=(8, 16, 16), kernel_size: int = 5,
                 pool: int = 4, hidden_units: int = 128, dropout: float = 0.5,
                 input: str = "minmax"):
        super().__init__()
        channels = tuple(channels)
        n_out = pooled_length(n_pixels, len(channels), pool)
        if n_out < 1:
            raise ValueError(f"{len(channels)} pool-{pool} blocks leave no pixels of {n_pixels}")
        self.standardizer = PixelStandardizer(n_pixels, input)
        self.features = ConvBlocks(1, channels, kernel_size, pool)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels[-1] * n_out, hidden_units), nn.ReLU(),
            Dropout(dropout), nn.Linear(hidden_units, n_classes))

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        x = self.features(self.standardizer(flux).unsqueeze(1))  # (B, 1, L) -> (B, c, L')
        return self.classifier(x)  # (B, C)


class PatchEmbedding(nn.Module):
    """Spectrum (B, L) -> tokens (B, N, D): pixel patches, a linear map, learned positions.

    Patches are `patch_width` pixels every `patch_stride` pixels (stride < width overlaps them).
    The end of the spectrum is zero-padded so that every pixel lies in some patch. With
    `use_cls` a learned [CLS] token is prepended (then N counts it). `mask_token` replaces the
    embedding of patches hidden during masked pretraining.
    """

    def __init__(self, n_pixels: int, patch_width: int, d_model: int,
                 patch_stride: int | None = None, use_cls: bool = False):
        super().__init__()
        stride = patch_stride or patch_width
        if not 0 < stride <= patch_width <= n_pixels:
            raise ValueError(f"need 0 < patch_stride ({stride}) <= patch_width ({patch_width}) "
                             f"<= n_pixels ({n_pixels})")
        self.n_pixels, self.patch_width, self.patch_stride = n_pixels, patch_width, stride
        self.n_patches = math.ceil((n_pixels - patch_width) / stride) + 1
        self.pad = (self.n_patches - 1) * stride + patch_width - n_pixels
        self.use_cls = use_cls
        self.n_tokens = self.n_patches + int(use_cls)
        self.proj = nn.Linear(patch_width, d_model)
        self.position = nn.Parameter(torch.zeros(1, self.n_tokens, d_model))
        self.mask_token = nn.Parameter(torch.zeros(d_model))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if use_cls else None
        # Positions start on the scale of the projected patch content (std ~0.58 for unit-
        # variance pixels under PyTorch's default Linear init) rather than BERT's 0.02:
        # attention can then tell patches apart from the first step. On small sets this cut
        # the plateau before masked reconstruction beats the mean spectrum by about 2.5x.
        nn.init.normal_(self.position, std=0.5)
        nn.init.normal_(self.mask_token, std=0.5)
        if use_cls:
            nn.init.normal_(self.cls_token, std=0.5)

    def patches(self, flux: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, n_patches, P) pixel patches (zero-padded at the red end)."""
        if self.pad:
            flux = F.pad(flux, (0, self.pad))
        return flux.unfold(1, self.patch_width, self.patch_stride)

    def forward(self, flux: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        x = self.proj(self.patches(flux))  # (B, n_patches, D)
        if masked is not None:  # (B, n_patches) bool: hide these patches' content
            x = torch.where(masked.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        if self.use_cls:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        return x + self.position  # (B, N, D)


class EncoderLayer(nn.Module):
    """One Transformer encoder layer, post-LayerNorm as in BERT and the paper's eqs. (1)-(5):

        (1) Q, K, V = X W_Q, X W_K, X W_V          (per head, d_k = D / h)
        (2) head_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i
        (3) MultiHead(X) = concat(head_1..head_h) W_O
        (4) Z = LayerNorm(X + MultiHead(X))
        (5) Y = LayerNorm(Z + max(0, Z W_1 + b_1) W_2 + b_2)
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.1):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_ff or 4 * d_model)
        self.ff2 = nn.Linear(d_ff or 4 * d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # 3 x (B, N, D)
        # (B, N, D) -> (B, h, N, d_k)
        q, k, v = (t.view(B, N, self.n_heads, self.d_head).transpose(1, 2) for t in (q, k, v))
        weights = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)  # (B, h, N, N)
        weights = self.dropout(weights.softmax(dim=-1))
        heads = weights @ v  # (B, h, N, d_k)
        return self.out(heads.transpose(1, 2).reshape(B, N, D))  # (B, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x)))
        feed_forward = self.ff2(self.dropout(F.relu(self.ff1(x))))
        return self.norm2(x + self.dropout(feed_forward))


class BertEncoder(nn.Module):
    """Input transform, patch embedding, embedding LayerNorm (as BERT), then `n_layers`
    encoder layers. The defaults are the `tiny` size (ENCODER_SIZES)."""

    def __init__(self, n_pixels: int, patch_width: int = 64, d_model: int = 32, n_heads: int = 2,
                 n_layers: int = 1, patch_stride: int | None = None, use_cls: bool = False,
                 d_ff: int | None = None, dropout: float = 0.1, input: str = "minmax"):
        super().__init__()
        self.config = dict(n_pixels=n_pixels, patch_width=patch_width, d_model=d_model,
                           n_heads=n_heads, n_layers=n_layers, patch_stride=patch_stride,
                           use_cls=use_cls, d_ff=d_ff or 4 * d_model, dropout=dropout,
                           input=input)
        self.standardizer = PixelStandardizer(n_pixels, input)
        self.embed = PatchEmbedding(n_pixels, patch_width, d_model, patch_stride, use_cls)
        self.embed_norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout)
                                    for _ in range(n_layers))

    @property
    def n_tokens(self) -> int:
        return self.embed.n_tokens

    def forward(self, flux: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dropout(self.embed_norm(self.embed(self.standardizer(flux), masked)))  # (B, N, D)
        for layer in self.layers:
            x = layer(x)
        return x  # (B, N, D); token 0 is [CLS] when use_cls


class CNNHead(nn.Module):
    """Token features (B, N, D) -> logits: Conv1d over the token axis, ReLU, max-pool,
    FC(hidden_units), ReLU, dropout, FC(C). Table 2's hidden_units and dropout are this FC
    layer's. With a [CLS] token its feature joins the FC input."""

    def __init__(self, d_model: int, n_tokens: int, n_classes: int, channels=(32,),
                 kernel_size: int = 3, pool: int = 2, hidden_units: int = 256,
                 dropout: float = 0.5, use_cls: bool = False):
        super().__init__()
        channels = tuple(channels)
        self.use_cls = use_cls
        n_out = pooled_length(n_tokens - int(use_cls), len(channels), pool)
        if n_out < 1:
            raise ValueError(f"{len(channels)} pool-{pool} blocks leave no tokens of {n_tokens}")
        self.features = ConvBlocks(d_model, channels, kernel_size, pool)
        n_features = channels[-1] * n_out + (d_model if use_cls else 0)
        self.classifier = nn.Sequential(
            nn.Linear(n_features, hidden_units), nn.ReLU(), Dropout(dropout),
            nn.Linear(hidden_units, n_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        cls, tokens = (tokens[:, 0], tokens[:, 1:]) if self.use_cls else (None, tokens)
        x = self.features(tokens.transpose(1, 2)).flatten(1)  # (B, D, N) -> (B, c * N')
        if cls is not None:
            x = torch.cat([x, cls], dim=1)
        return self.classifier(x)  # (B, C)


class BertCNN(nn.Module):
    """The paper's hybrid: BertEncoder token features T1..TN -> CNNHead.

    Default encoder: the `tiny` size (patch 64, d_model 32, 2 heads, 1 layer); the workflow
    names a size (ENCODER_SIZES) per model, chosen by CV like any hyperparameter. Head
    defaults are the paper's (hidden 256, dropout 0.5)."""

    def __init__(self, n_pixels: int, n_classes: int, patch_width: int = 64, d_model: int = 32,
                 n_heads: int = 2, n_layers: int = 1, patch_stride: int | None = None,
                 use_cls: bool = False, d_ff: int | None = None, encoder_dropout: float = 0.1,
                 head_channels=(32,), head_kernel_size: int = 3, head_pool: int = 2,
                 hidden_units: int = 256, dropout: float = 0.5, input: str = "minmax"):
        super().__init__()
        self.encoder = BertEncoder(n_pixels, patch_width, d_model, n_heads, n_layers, patch_stride,
                                   use_cls, d_ff, encoder_dropout, input)
        self.head = CNNHead(d_model, self.encoder.n_tokens, n_classes, head_channels,
                            head_kernel_size, head_pool, hidden_units, dropout, use_cls)

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(flux))  # (B, L) -> (B, N, D) -> (B, C)


class MaskedPatchModel(nn.Module):
    """BERT-style pretext task: hide a fraction of the patches, predict their pixel flux.

    The target is the encoder's own input (the flux after its input transform; with the
    'standardized' input, predicting the mean training spectrum scores a loss of about 1 and
    only what differs between stars is left to learn). The loss is the mean squared error over the pixels of the hidden patches only. With
    overlapping patches the hidden pixels are partly visible in the neighbours; that makes the
    task easier but is still a valid pretext task.
    """

    def __init__(self, encoder: BertEncoder):
        super().__init__()
        self.encoder = encoder
        d_model = encoder.config["d_model"]
        self.decoder = nn.Linear(d_model, encoder.embed.patch_width)

    def random_mask(self, n_spectra: int, mask_fraction: float, device=None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, n_patches) bool with exactly round(mask_fraction * n_patches) True per row."""
        n_patches = self.encoder.embed.n_patches
        n_masked = max(1, round(mask_fraction * n_patches))
        scores = torch.rand(n_spectra, n_patches, generator=generator, device=device)
        hidden = scores.argsort(dim=1)[:, :n_masked]
        return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, hidden, True)

    def forward(self, flux: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Reconstructed patch flux (B, n_patches, P) for every patch."""
        tokens = self.encoder(flux, masked)  # (B, N, D)
        if self.encoder.embed.use_cls:
            tokens = tokens[:, 1:]
        return self.decoder(tokens)

    def loss(self, flux: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        target = self.encoder.embed.patches(self.encoder.standardizer(flux))  # (B, n_patches, P)
        predicted = self.forward(flux, masked)
        return F.mse_loss(predicted[masked].float(), target[masked].float())
