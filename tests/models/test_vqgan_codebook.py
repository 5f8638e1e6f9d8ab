"""What hfgen adds to diffusers' VQModel for a VQ-GAN: quantisation with its loss terms, code statistics, EMA codebook
updates, dead-code restarts, the VQ-GAN losses, the perceptual loss and the prior's token format, each on tiny tensors
with values worked out by hand."""

import pytest
import torch
from diffusers import VQModel
from transformers import Dinov2Config, Dinov2Model

from hfgen.losses import adaptive_adversarial_weight, pyramid_l1
from hfgen.models.vqgan import (
    DeadCodeRestarts,
    EMACodebook,
    code_counts,
    code_sequences,
    codebook_perplexity,
    load_perceptual_loss,
    prior_config,
    quantize,
    unused_code_share,
)
from hfgen.models.vqgan.training import VQGANAutoencoder

CODEBOOK = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
# three latent vectors (a 1x3 grid of 2 channels), nearest to codes 0, 1 and 2
VECTORS = torch.tensor([[0.1, 0.1], [0.9, -0.2], [0.2, 1.5]])


def as_latents(vectors: torch.Tensor) -> torch.Tensor:
    return vectors.t().reshape(1, 2, 1, len(vectors)).clone()


def test_quantize_picks_the_nearest_codes_with_both_loss_terms_and_the_straight_through_gradient():
    latents = as_latents(VECTORS).requires_grad_(True)
    codebook = CODEBOOK.clone().requires_grad_(True)
    output = quantize(latents, codebook)
    assert output.indices.tolist() == [[[0, 1, 2]]]
    assert torch.equal(output.quantized.detach(), as_latents(CODEBOOK))
    # squared differences 0.01 0.01 | 0.01 0.04 | 0.04 0.25, averaged over the 6 entries
    assert output.commitment_loss.item() == pytest.approx(0.36 / 6)
    assert output.codebook_loss.item() == pytest.approx(0.36 / 6)
    # the straight-through estimator passes the gradient to the latents unchanged, and none to the codebook
    output.quantized.sum().backward()
    assert torch.equal(latents.grad, torch.ones_like(latents)) and codebook.grad is None
    # the commitment term trains the latents only, the codebook term the codes only:
    # d/de of mean (e - z)^2 = 2 (e - z) / 6
    latents.grad = None
    output = quantize(latents, codebook)
    (output.codebook_loss + output.commitment_loss).backward()
    torch.testing.assert_close(codebook.grad, 2 * (CODEBOOK - VECTORS) / 6)
    torch.testing.assert_close(latents.grad, as_latents(2 * (VECTORS - CODEBOOK) / 6))
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 2, height, width\)"):
        quantize(torch.zeros(1, 3, 2, 2), codebook)


def test_training_forward_decodes_the_codes_diffusers_vqmodel_picks():
    torch.manual_seed(0)
    vqvae = VQModel(
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        block_out_channels=[8, 16],
        norm_num_groups=4,
        latent_channels=3,
        num_vq_embeddings=8,
        sample_size=8,
    ).eval()
    images = torch.rand(2, 1, 8, 8) * 2 - 1
    with torch.no_grad():  # codes among the encoder's outputs, so that several are chosen
        vectors = vqvae.encode(images).latents.permute(0, 2, 3, 1).reshape(-1, 3)
        vqvae.quantize.embedding.weight.data = vectors[::4].clone()
    reconstructions, latents, quantized = VQGANAutoencoder(vqvae)(images)
    with torch.no_grad():
        expected_quantized, _, (_, _, expected_indices) = vqvae.quantize(latents)
        torch.testing.assert_close(reconstructions, vqvae(images).sample)
    assert torch.equal(quantized.indices.flatten(), expected_indices.flatten())
    torch.testing.assert_close(quantized.quantized, expected_quantized)
    assert len(quantized.indices.unique()) > 1


def test_code_statistics():
    counts = code_counts(torch.tensor([[0, 1], [1, 0]]), num_codes=4)
    assert counts.tolist() == [2.0, 2.0, 0.0, 0.0]
    assert codebook_perplexity(counts) == pytest.approx(2.0)  # two codes used equally
    assert unused_code_share(counts) == 0.5
    assert codebook_perplexity(torch.tensor([4.0, 0, 0, 0])) == pytest.approx(1.0)
    assert codebook_perplexity(torch.ones(4)) == pytest.approx(4.0)
    # p = (1/2, 1/4, 1/4): entropy 1.5 ln 2, perplexity 2 ** 1.5
    assert codebook_perplexity(torch.tensor([2.0, 1, 1])) == pytest.approx(2**1.5)
    with pytest.raises(ValueError, match="at least one counted code"):
        codebook_perplexity(torch.zeros(3))


def test_ema_codebook_moves_codes_to_running_means_of_their_vectors():
    codebook = torch.nn.Embedding(2, 1)
    codebook.weight.data = torch.tensor([[0.0], [10.0]])
    ema = EMACodebook(codebook, decay=0.5, epsilon=1e-8)
    assert not codebook.weight.requires_grad  # the optimizer leaves it alone
    counts = ema.update(torch.tensor([[1.0], [3.0], [10.0]]), torch.tensor([0, 0, 1]))
    assert counts.tolist() == [2.0, 1.0]
    # counts 0.5 * 1 + 0.5 * (2, 1) = (1.5, 1); sums 0.5 * (0, 10) + 0.5 * (4, 10) = (2, 10)
    assert ema.cluster_size.tolist() == [1.5, 1.0] and ema.embed_sum.flatten().tolist() == [2.0, 10.0]
    torch.testing.assert_close(codebook.weight.flatten(), torch.tensor([2 / 1.5, 10.0]))
    state = {name: value.clone() for name, value in ema.state_dict().items()}
    # with two processes the statistics are summed over both (here: two identical processes)
    ema.update(torch.tensor([[2.0]]), torch.tensor([0]), reduce=lambda tensor: 2 * tensor)
    # counts 0.5 * (1.5, 1) + 0.5 * (2, 0) = (1.75, 0.5); sums 0.5 * (2, 10) + 0.5 * (4, 0) = (3, 5)
    torch.testing.assert_close(codebook.weight.flatten(), torch.tensor([3 / 1.75, 10.0]))
    # Laplace smoothing keeps a code no vector chose from dividing by a vanishing count
    smoothed = EMACodebook(torch.nn.Embedding(3, 1), decay=0.5, epsilon=0.5)
    smoothed.cluster_size = torch.tensor([4.0, 0.0, 0.0])
    smoothed.update(torch.tensor([[1.0]]), torch.tensor([0]))
    total = 2.5  # counts (2 + 0.5, 0, 0)
    expected_counts = (torch.tensor([2.5, 0, 0]) + 0.5) / (total + 1.5) * total
    torch.testing.assert_close(smoothed.codebook.weight.flatten(), smoothed.embed_sum.flatten() / expected_counts)
    # the state resumes a run
    ema.load_state_dict(state)
    assert ema.cluster_size.tolist() == [1.5, 1.0]
    ema.reset_codes(torch.tensor([1]), torch.tensor([[7.0]]))
    assert ema.cluster_size.tolist() == [1.5, 1.0] and ema.embed_sum[1].item() == 7.0
    with pytest.raises(ValueError, match="decay must lie in"):
        EMACodebook(torch.nn.Embedding(2, 1), decay=1.0)


def test_dead_codes_are_restarted_at_candidates_drawn_from_the_generator():
    restarts = DeadCodeRestarts(num_codes=4, dead_after=2)
    assert not restarts.observe(torch.tensor([1.0, 0, 0, 3])).any()
    assert restarts.steps_unused.tolist() == [0, 1, 1, 0]
    dead = restarts.observe(torch.tensor([1.0, 0, 2, 0]))
    assert dead.tolist() == [False, True, False, False] and restarts.dead_share() == 0.25
    codebook = torch.zeros(4, 2)
    candidates = torch.tensor([[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]])
    restarted = restarts.restart(codebook, dead, candidates, torch.Generator().manual_seed(0))
    assert restarted.tolist() == [1]
    row = torch.randperm(3, generator=torch.Generator().manual_seed(0))[0]
    assert torch.equal(codebook[1], candidates[row]) and codebook[[0, 2, 3]].abs().sum() == 0
    assert restarts.steps_unused.tolist() == [0, 0, 0, 1] and restarts.dead_share() == 0.0
    # more dead codes than candidates: drawn with replacement
    many = DeadCodeRestarts(num_codes=4, dead_after=1)
    dead = many.observe(torch.zeros(4))
    codebook = torch.zeros(4, 2)
    assert many.restart(codebook, dead, candidates[:1], torch.Generator().manual_seed(0)).tolist() == [0, 1, 2, 3]
    assert torch.equal(codebook, candidates[:1].expand(4, 2))
    state = {name: value.clone() for name, value in restarts.state_dict().items()}
    restarts.observe(torch.zeros(4))
    restarts.load_state_dict(state)
    assert restarts.steps_unused.tolist() == [0, 0, 0, 1]


def test_pyramid_l1_compares_the_images_at_coarser_scales_only():
    zeros, ones = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert pyramid_l1(zeros, ones).item() == 1.0
    checkerboard = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1
    # a pixel-level pattern averages away at every coarser scale
    assert pyramid_l1(zeros, checkerboard.view(1, 1, 8, 8)).item() == 0.0
    # 2x2 blocks of +-1 survive the first pooling only: (1 + 0 + 0) / 3
    blocks = checkerboard[:4, :4].repeat_interleave(2, 0).repeat_interleave(2, 1).view(1, 1, 8, 8)
    assert pyramid_l1(zeros, blocks).item() == pytest.approx(1 / 3)
    # levels that would go below one pixel are skipped: 4x4 images have two
    assert pyramid_l1(zeros[..., :4, :4], ones[..., :4, :4], levels=5).item() == 1.0


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    weight = torch.ones(4, requires_grad=True)
    reconstruction_loss = 3 * weight.sum()  # gradient (3, 3, 3, 3): norm 6
    adversarial_loss = (weight * torch.tensor([1.0, 1, 1, 1])).sum()  # gradient norm 2
    value = adaptive_adversarial_weight(reconstruction_loss, adversarial_loss, weight)
    assert value.item() == pytest.approx(6 / (2 + 1e-4)) and not value.requires_grad
    (reconstruction_loss + adversarial_loss).backward()  # the graphs are kept for the step's own backward
    assert weight.grad.tolist() == [4.0] * 4
    flat = 0 * (weight * weight).sum()  # no adversarial gradient: 6 / 1e-4, clamped
    assert adaptive_adversarial_weight(3 * weight.sum(), flat, weight, max_weight=100.0).item() == 100.0


@pytest.fixture(scope="module")
def tiny_backbone_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_dinov2")
    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8
    )
    Dinov2Model(config).save_pretrained(folder)
    return folder


def test_perceptual_loss_through_a_transformers_backbone_folder(tiny_backbone_folder, tmp_path):
    loss = load_perceptual_loss(str(tiny_backbone_folder))
    torch.manual_seed(0)
    originals = torch.rand(2, 1, 16, 16) * 2 - 1
    reconstructions = (originals + 0.3 * torch.randn(2, 1, 16, 16)).clamp(-1, 1).requires_grad_(True)
    assert loss(originals, originals).item() == pytest.approx(0.0, abs=1e-6)
    value = loss(reconstructions, originals)
    # unit-normalised features: each squared distance lies in [0, 4]
    assert 0 < value.item() <= 4
    value.backward()
    assert reconstructions.grad.abs().sum() > 0
    assert not any(parameter.requires_grad for parameter in loss.parameters())  # the backbone stays frozen
    # one distance per hidden layer after the embeddings, averaged
    features = loss.hidden_features(torch.cat([reconstructions.detach(), originals]))
    assert len(features) == 2 and features[0].shape[0] == 4
    per_layer = [(feature[:2] - feature[2:]).pow(2).sum(-1).mean() for feature in features]
    torch.testing.assert_close(loss(reconstructions.detach(), originals), torch.stack(per_layer).mean())
    with pytest.raises(ValueError, match="--perceptual_model"):
        load_perceptual_loss(str(tmp_path / "missing"))


def test_prior_format_start_token_then_codes_row_by_row():
    config = prior_config(num_codes=16, num_tokens=4, hidden_size=8, num_layers=1, num_heads=2)
    assert (config.vocab_size, config.n_positions, config.bos_token_id) == (17, 5, 16)
    sequences = code_sequences(torch.tensor([[[3, 1], [4, 1]], [[5, 9], [2, 6]]]), start=16)
    assert sequences.tolist() == [[16, 3, 1, 4, 1], [16, 5, 9, 2, 6]]
