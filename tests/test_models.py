"""The nn.Modules: output shapes, the encoder layer's equations, and that each model can learn
(overfit a tiny batch)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stellarspec.training.networks import adam, build_classifier
from stellarspec.data.preprocess import model_input, normalise, pixel_standardization
from stellarspec.models import (BertCNN, BertEncoder, CNNHead, ConvBlocks, Dropout, EncoderLayer,
                                MaskedPatchModel, PatchEmbedding, PixelStandardizer, SpectrumCNN)
from stellarspec.runtime import keep_freed_memory

L = 256  # pixels of the toy spectra


def toy_batch(n=12, n_classes=3, seed=0):
    """Spectra whose class sets the position of one absorption line, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.linspace(0, 1, L)
    centres = 0.25 + 0.25 * y.float()
    flux = 1 - 0.5 * torch.exp(-0.5 * ((x[None] - centres[:, None]) / 0.03) ** 2)
    return flux + 0.05 * torch.randn(n, L, generator=g), y


def test_patch_embedding_shapes_and_padding():
    embed = PatchEmbedding(n_pixels=250, patch_width=32, d_model=8)
    assert embed.n_patches == 8 and embed.pad == 6  # 250 px -> 8 patches, 6 px zero-padded
    flux = torch.arange(2 * 250, dtype=torch.float32).view(2, 250)
    patches = embed.patches(flux)
    assert patches.shape == (2, 8, 32)
    assert torch.equal(patches[1, 0], flux[1, :32])
    assert torch.equal(patches[0, -1, :26], flux[0, 224:]) and not patches[0, -1, 26:].any()
    assert embed(flux).shape == (2, 8, 8)

    overlap = PatchEmbedding(n_pixels=256, patch_width=32, d_model=8, patch_stride=16, use_cls=True)
    assert overlap.n_patches == 15 and overlap.n_tokens == 16
    flux = torch.rand(2, 256)
    assert torch.equal(overlap.patches(flux)[0, 1], flux[0, 16:48])
    assert overlap(flux).shape == (2, 16, 8)


def test_pixel_standardizer():
    flux, _ = toy_batch(12)
    flux[:, 0] = 0.5  # a constant pixel: its scale is floored, not zero
    standardizer = PixelStandardizer(L, "standardized").fit(flux)
    z = standardizer(flux)
    assert torch.allclose(z[:, 1:].mean(0), torch.zeros(L - 1), atol=1e-5)
    assert torch.allclose(z[:, 1:].std(0), torch.ones(L - 1), atol=1e-4)
    assert torch.isfinite(z).all() and not z[:, 0].any()
    assert "mean" in standardizer.state_dict()  # travels with checkpoints
    # One fit of mean and scale, shared with the SVM's input (preprocess.model_input).
    mean, scale = pixel_standardization(flux.numpy())
    assert torch.allclose(standardizer.mean, torch.from_numpy(mean).float())
    assert torch.allclose(standardizer.scale, torch.from_numpy(scale).float())
    assert torch.allclose(z, torch.from_numpy(model_input("standardized", flux.numpy())[0]).float(),
                          atol=1e-5)
    off = PixelStandardizer(L, "minmax").fit(flux)
    assert torch.equal(off(flux), flux)
    with pytest.raises(ValueError, match="input must be one of"):
        PixelStandardizer(L, "standardize")


def test_mask_token_replaces_only_masked_patches():
    torch.manual_seed(0)
    embed = PatchEmbedding(n_pixels=L, patch_width=32, d_model=8)
    flux, _ = toy_batch(2)
    masked = torch.zeros(2, 8, dtype=torch.bool)
    masked[0, 3] = True
    plain, hidden = embed(flux), embed(flux, masked)
    assert torch.equal(plain[~masked], hidden[~masked])
    assert torch.allclose(hidden[0, 3], embed.mask_token + embed.position[0, 3])


def test_encoder_layer_matches_the_equations():
    """EncoderLayer against eqs. (1)-(5) written out head by head."""
    torch.manual_seed(0)
    d, h, n = 8, 2, 5
    layer = EncoderLayer(d, h, d_ff=16, dropout=0.0).eval()
    x = torch.randn(3, n, d)
    Wq, Wk, Wv = layer.qkv.weight.split(d)
    bq, bk, bv = layer.qkv.bias.split(d)
    heads = []
    for i in range(h):
        s = slice(i * d // h, (i + 1) * d // h)
        q, k, v = x @ Wq[s].T + bq[s], x @ Wk[s].T + bk[s], x @ Wv[s].T + bv[s]
        heads.append(torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d // h), dim=-1) @ v)
    attention = layer.out(torch.cat(heads, -1))
    z = F.layer_norm(x + attention, (d,), layer.norm1.weight, layer.norm1.bias)
    ff = layer.ff2(torch.relu(layer.ff1(z)))
    expected = F.layer_norm(z + ff, (d,), layer.norm2.weight, layer.norm2.bias)
    assert torch.allclose(layer(x), expected, atol=1e-6)


@pytest.mark.parametrize("length, kernel_size, pool", [(256, 5, 4), (250, 3, 2), (61, 5, 3)])
def test_conv_blocks_equal_conv_relu_maxpool(length, kernel_size, pool):
    """ConvBlocks (channels-last 2-D conv, pool before ReLU) gives the values and gradients of
    the textbook Conv1d -> ReLU -> MaxPool1d stack, ties in the max included."""
    torch.manual_seed(0)
    blocks = ConvBlocks(3, (4, 6), kernel_size, pool)
    reference = torch.nn.Sequential(*[m for conv in blocks.convs for m in (
        torch.nn.Conv1d(conv.in_channels, conv.out_channels, kernel_size,
                        padding=kernel_size // 2), torch.nn.ReLU(), torch.nn.MaxPool1d(pool))])
    for conv, ref in zip(blocks.convs, reference[::3]):
        ref.weight.data.copy_(conv.weight.data.squeeze(2))
        ref.bias.data.copy_(conv.bias.data)
    x = torch.randn(5, 3, length)
    x[:, :, 10:30] = 0.7  # a flat stretch (masked pixels are filled) makes equal maxima
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = blocks(x_ours), reference(x_ref)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    assert torch.allclose(x_ours.grad, x_ref.grad, atol=1e-5)
    for conv, ref in zip(blocks.convs, reference[::3]):
        assert torch.allclose(conv.weight.grad.squeeze(2), ref.weight.grad, atol=1e-4)
        assert torch.allclose(conv.bias.grad, ref.bias.grad, atol=1e-4)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_cpu_dropout_is_dropout(p):
    """The fast CPU dropout zeroes a fraction p (in every one of the four 16-bit lanes of a
    64-bit draw), scales the rest by 1 / (1 - p), passes gradients through the same mask,
    and is the identity in eval mode."""
    torch.manual_seed(0)
    n = 400_000
    x = torch.rand(n) + 0.5
    x.requires_grad_()
    layer = Dropout(p)
    y = layer(x)
    dropped = y == 0
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.float().mean().item() - p) < 5 * sigma
    for lane in range(4):  # element i comes from lane i % 4 of a 64-bit draw
        assert abs(dropped[lane::4].float().mean().item() - p) < 5 * 2 * sigma
    scale = (y[~dropped] / x[~dropped]).detach()
    assert torch.allclose(scale, torch.full_like(scale, 1 / (1 - p)), rtol=1e-4)
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.01
    y.backward(torch.ones(n))
    assert torch.equal(x.grad == 0, dropped)
    assert not torch.equal(layer(x) == 0, dropped)  # a fresh mask per call
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(1)
    assert torch.equal(layer(x), first)  # reproducible from the torch seed
    assert torch.equal(layer.eval()(x), x)


def test_cpu_dropout_edge_probabilities():
    x = torch.rand(1000)
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    assert Dropout(0.5)(torch.rand(3, 5, 7)).shape == (3, 5, 7)  # numel not a multiple of 4


def test_fused_adam_matches_plain_adam():
    torch.manual_seed(0)
    models = [SpectrumCNN(L, 3, hidden_units=16) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [adam(models[0].parameters(), 1e-2, 1e-3),
                  torch.optim.Adam(models[1].parameters(), lr=1e-2, weight_decay=1e-3)]
    assert optimizers[0].defaults["fused"]
    flux, y = toy_batch()
    for _ in range(5):
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            F.cross_entropy(model.eval()(flux), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_keep_freed_memory_is_accepted_by_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory()


def test_output_shapes():
    flux, _ = toy_batch(4)
    assert SpectrumCNN(L, 3, hidden_units=16)(flux).shape == (4, 3)
    encoder = BertEncoder(L, patch_width=16, d_model=16, n_heads=2, n_layers=2)
    assert encoder(flux).shape == (4, 16, 16)
    assert CNNHead(16, 16, 3, hidden_units=8)(encoder(flux)).shape == (4, 3)
    for kwargs in ({}, {"use_cls": True}, {"patch_stride": 8}):
        model = BertCNN(L, 3, patch_width=16, d_model=16, n_heads=2, hidden_units=8, **kwargs)
        assert model(flux).shape == (4, 3)
    mpm = MaskedPatchModel(BertEncoder(L, patch_width=16, d_model=16, n_heads=2, use_cls=True))
    masked = mpm.random_mask(4, 0.25)
    assert masked.shape == (4, 16) and (masked.sum(1) == 4).all()
    assert mpm(flux, masked).shape == (4, 16, 16)
    assert mpm.loss(flux, masked).ndim == 0


def test_invalid_shapes_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        EncoderLayer(10, 3)
    with pytest.raises(ValueError, match="no pixels"):
        SpectrumCNN(64, 3, channels=(4, 4, 4, 4), pool=4)
    with pytest.raises(ValueError, match="patch_stride"):
        PatchEmbedding(64, 16, 8, patch_stride=32)


def overfit(model, loss_fn, steps=150, lr=3e-3):
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        loss = loss_fn()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, loss.item()


@pytest.mark.parametrize("make", [
    lambda: SpectrumCNN(L, 3, hidden_units=32, dropout=0.0),
    lambda: BertCNN(L, 3, patch_width=16, d_model=16, n_heads=2, n_layers=1, hidden_units=32,
                    dropout=0.0, encoder_dropout=0.0),
], ids=["cnn", "bert_cnn"])
def test_classifier_overfits_a_tiny_batch(make):
    torch.manual_seed(0)
    model = make()
    flux, y = toy_batch(12)
    first, last = overfit(model, lambda: F.cross_entropy(model(flux), y))
    assert last < 0.05 < first
    assert (model(flux).argmax(1) == y).all()


def test_masked_patch_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = MaskedPatchModel(BertEncoder(L, patch_width=16, d_model=32, n_heads=2, n_layers=1,
                                         dropout=0.0))
    flux, _ = toy_batch(4)
    masked = model.random_mask(4, 0.2, generator=torch.Generator().manual_seed(0))
    first, last = overfit(model, lambda: model.loss(flux, masked), steps=300)
    assert last < 0.05 * first


# Parameter counts on the SDSS 3840-pixel grid (config/paper.yaml), as documented beside
# models.ENCODER_SIZES: (encoder alone, BertCNN with the default head and 4 classes).
ENCODER_PARAMETERS = {"tiny": (16_800, 266_948), "micro": (108_160, 361_380),
                      "mini": (3_191_808, 3_463_460), "small": (12_675_072, 12_971_300)}


@pytest.mark.parametrize("size", sorted(ENCODER_PARAMETERS))
def test_encoder_size_builds_trains_a_step_and_has_its_documented_size(size):
    import inspect

    from stellarspec import models

    n_pixels = 3840
    torch.manual_seed(0)
    model = build_classifier("bert_cnn", {"encoder": size, "input": "standardized"}, n_pixels, 4)
    n_encoder = sum(p.numel() for p in model.encoder.parameters())
    n_total = sum(p.numel() for p in model.parameters())
    assert (n_encoder, n_total) == ENCODER_PARAMETERS[size]
    documented = inspect.getsource(models)
    assert f"{n_encoder:,}" in documented and f"{n_total:,}" in documented
    assert len(model.encoder.layers) == models.ENCODER_SIZES[size]["n_layers"]
    assert model.encoder.layers[0].ff1.out_features == models.ENCODER_SIZES[size]["d_ff"]
    flux, y = torch.rand(4, n_pixels), torch.arange(4)
    model.encoder.standardizer.fit(flux)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = adam(model.parameters(), 1e-3)
    loss = F.cross_entropy(model(flux), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if b.grad is not None)


def test_named_encoder_and_its_own_keys_are_not_mixed():
    with pytest.raises(ValueError, match="either the named size or the keys"):
        build_classifier("bert_cnn", {"encoder": "mini", "d_model": 32}, 256, 3)
    with pytest.raises(ValueError, match="unknown encoder size"):
        build_classifier("bert_cnn", {"encoder": "huge"}, 256, 3)
    # Without a name the defaults are the tiny size.
    assert (sum(p.numel() for p in build_classifier("bert_cnn", {}, 3840, 4).parameters())
            == ENCODER_PARAMETERS["tiny"][1])


def test_minmax_input_is_exactly_the_papers_transform():
    """What a network sees under input: minmax is the per-spectrum min-max flux and nothing
    else; under 'standardized' it is that flux standardised with the fit rows' statistics."""
    g = torch.Generator().manual_seed(0)
    raw = 100 + 50 * torch.rand(6, L, generator=g, dtype=torch.float64)  # flux in any units
    paper = (raw - raw.min(1, keepdim=True).values) / (raw.max(1, keepdim=True).values
                                                       - raw.min(1, keepdim=True).values)
    flux = torch.from_numpy(normalise(raw.numpy(), torch.zeros(6, L, dtype=torch.bool).numpy(),
                                      "minmax")).float()
    assert torch.allclose(flux, paper.float(), atol=1e-7)
    fit_rows = flux[:4]
    for model in ("cnn", "bert_cnn"):
        seen = {}
        for input in ("minmax", "standardized"):
            net = build_classifier(model, {"input": input}, L, 3)
            standardizer = getattr(net, "encoder", net).standardizer
            seen[input] = standardizer.fit(fit_rows)(flux)
        assert torch.equal(seen["minmax"], flux)
        expected = model_input("standardized", fit_rows.numpy(), flux.numpy())[1]
        assert torch.allclose(seen["standardized"], torch.from_numpy(expected).float(), atol=1e-5)
        assert not torch.allclose(seen["standardized"], flux)
    assert (model_input("minmax", flux.numpy(), flux[:2].numpy())[1] == flux[:2].numpy()).all()
