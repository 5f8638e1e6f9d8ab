"""VQGANPipeline: the shared pipeline tests, then reconstruction, the prior's sampling options and a folder without a
prior."""

import pytest
import torch
from diffusers import VQModel
from transformers import GPT2LMHeadModel

from hfgen import VQGANPipeline, VQGANPipelineOutput
from hfgen.families import load_folder_pipeline
from hfgen.models.vqgan import code_sequences, prior_config
from hfgen.testing.pipeline_tester import PipelineTesterMixin, raises_value_error, seeded


def tiny_vqvae() -> VQModel:
    """16 px greyscale images through 8 x 8 codes of dimension 3 from a codebook of 16."""
    torch.manual_seed(0)
    vqvae = VQModel(
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        block_out_channels=[8, 16],
        norm_num_groups=4,
        latent_channels=3,
        num_vq_embeddings=16,
        sample_size=16,
    )
    vqvae.quantize.embedding.weight.data.normal_()  # codes as far apart as trained ones, not all near zero
    return vqvae.eval()


def tiny_prior() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(prior_config(num_codes=16, num_tokens=64, hidden_size=16, num_layers=1, num_heads=2)).eval()


class TestVQGANPipeline(PipelineTesterMixin):
    pipeline_class = VQGANPipeline
    # Generated once from this code: regenerate whenever the model's maths or initialisation change, by running
    # test_expected_slice and pasting the values its failure prints.
    expected_slice = (0.594223, 0.58856, 0.569865, 0.46203, 0.718467, 0.647738, 0.445707, 0.46092, 0.461627)

    def get_components(self):
        return {"vqvae": tiny_vqvae(), "prior": tiny_prior()}

    def latent_shape(self, pipeline):
        return (3, 8, 8)


def test_reconstruct_is_the_vqmodel_round_trip():
    pipeline = TestVQGANPipeline().get_pipeline()
    images = torch.rand(2, 1, 16, 16, generator=seeded(0))
    output = pipeline.reconstruct(images, output_type="pt")
    assert isinstance(output, VQGANPipelineOutput) and output.codes.shape == (2, 8, 8)
    with torch.no_grad():
        expected = pipeline.vqvae(images * 2 - 1).sample  # diffusers' encode, quantise, decode
        latents = pipeline.vqvae.encode(images * 2 - 1).latents
    torch.testing.assert_close(output.images, (expected * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-5)
    assert torch.equal(output.latents, latents)
    # the codes are those diffusers' quantizer picks, and decoding them as latents gives the same images
    with torch.no_grad():
        _, _, (_, _, indices) = pipeline.vqvae.quantize(latents)
    assert torch.equal(output.codes.flatten(), indices.flatten())
    again = pipeline(latents=pipeline.codebook_vectors(output.codes), output_type="pt")
    assert torch.equal(again.codes, output.codes)
    torch.testing.assert_close(again.images, output.images, rtol=0, atol=1e-6)
    pil = pipeline.reconstruct(pipeline.image_processor.postprocess(images * 2 - 1, output_type="pil")).images
    assert len(pil) == 2 and pil[0].size == (16, 16)
    with raises_value_error("images have 3 channels but the VQ-GAN expects 1"):
        pipeline.reconstruct(torch.rand(1, 3, 16, 16))


def test_sampling_follows_the_prior_temperature_and_top_k():
    pipeline = TestVQGANPipeline().get_pipeline()
    output = pipeline(batch_size=3, generator=seeded(0), output_type="pt")
    assert output.codes.shape == (3, 8, 8) and output.codes.max() < 16  # the start token is never drawn
    # top_k=1 is greedy: every generator draws the codes the prior finds most likely, one after the other
    greedy = pipeline(batch_size=1, generator=seeded(0), top_k=1, output_type="pt").codes
    assert torch.equal(pipeline(batch_size=1, generator=seeded(5), top_k=1, output_type="pt").codes, greedy)
    tokens = code_sequences(greedy, start=16)
    with torch.no_grad():
        logits = pipeline.prior(input_ids=tokens).logits[0, :-1, :16]
    assert torch.equal(logits.argmax(-1), greedy.flatten())
    # top_k=2 draws among the two most likely codes at every position
    drawn = pipeline(batch_size=1, generator=seeded(1), top_k=2, output_type="pt").codes
    with torch.no_grad():
        logits = pipeline.prior(input_ids=code_sequences(drawn, start=16)).logits[0, :-1, :16]
    assert (logits.topk(2, dim=-1).indices == drawn.flatten()[:, None]).any(-1).all()
    # a temperature near 0 is greedy too, a very high one draws every code about as often (1/16 of the time each)
    cold = pipeline(batch_size=4, generator=seeded(2), temperature=1e-4, output_type="pt").codes
    hot = pipeline(batch_size=4, generator=seeded(2), temperature=1e4, output_type="pt").codes
    assert torch.equal(cold, greedy.expand(4, -1, -1))
    assert (hot == greedy).float().mean() < 0.2 and len(hot.unique()) == 16
    for bad in (0, -1.0, "1"):
        with raises_value_error("temperature must be a positive number"):
            pipeline(batch_size=1, temperature=bad)
    for bad in (0, 2.5):
        with raises_value_error("top_k must be a positive int or None"):
            pipeline(batch_size=1, top_k=bad)


def test_a_folder_without_a_prior_reconstructs_and_refuses_to_sample(tmp_path):
    vqvae = tiny_vqvae()
    VQGANPipeline(vqvae=vqvae, prior=None).save_pretrained(tmp_path / "pipeline")
    loaded = VQGANPipeline.from_pretrained(tmp_path / "pipeline")
    assert loaded.prior is None
    images = torch.rand(1, 1, 16, 16, generator=seeded(0))
    expected = VQGANPipeline(vqvae=vqvae, prior=None).reconstruct(images, output_type="pt").images
    assert torch.equal(loaded.reconstruct(images, output_type="pt").images, expected)
    with raises_value_error("has no prior", "--prior_train_steps 0", "reconstruct(images)"):
        loaded(batch_size=1)
    # diffusers loads the autoencoder alone; hfgen's tools make a pipeline of a lone VQModel folder
    alone = VQModel.from_pretrained(tmp_path / "pipeline", subfolder="vqvae")
    vqvae.save_pretrained(tmp_path / "vqmodel")
    folder_pipeline = load_folder_pipeline(str(tmp_path / "vqmodel"))
    assert isinstance(folder_pipeline, VQGANPipeline) and folder_pipeline.prior is None
    assert torch.equal(folder_pipeline.reconstruct(images, output_type="pt").images, expected)
    assert torch.equal(alone.quantize.embedding.weight, vqvae.quantize.embedding.weight)


@pytest.mark.parametrize("latents_shape", [(1, 3, 4, 4), (1, 2, 8, 8)])
def test_latents_of_the_wrong_shape_are_refused(latents_shape):
    pipeline = TestVQGANPipeline().get_pipeline()
    with raises_value_error("latents must be a torch.Tensor of shape (batch, 3, 8, 8)"):
        pipeline(latents=torch.zeros(latents_shape))


def test_a_vqmodel_is_a_latent_diffusion_first_stage(tmp_path):
    """A VQModel as the first stage of LatentDiffusionPipeline (and of train_ldm.py): the UNet denoises the latents
    before quantisation, and decoding quantises them to the nearest codes first."""
    from hfgen import LatentDiffusionPipeline
    from hfgen.training.diffusion import encode_latents

    from ..training_scripts.conftest import import_script
    from .test_pipeline_latent_diffusion import tiny_components

    components = tiny_components()
    torch.manual_seed(0)
    vqvae = VQModel(
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        block_out_channels=[8, 16],
        norm_num_groups=4,
        latent_channels=4,  # the UNet's channels
        num_vq_embeddings=16,
        sample_size=16,
        scaling_factor=0.5,
    ).eval()
    vqvae.quantize.embedding.weight.data.normal_()
    pipeline = LatentDiffusionPipeline(**{**components, "vae": vqvae})
    pipeline.set_progress_bar_config(disable=True)
    output = pipeline(prompt="3", generator=seeded(0), num_inference_steps=2, output_type="pt")
    latents = pipeline(prompt="3", generator=seeded(0), num_inference_steps=2, output_type="latent").images
    vq = VQGANPipeline(vqvae=vqvae, prior=None)
    quantized, _ = vq.quantize(latents / 0.5)
    with torch.no_grad():
        expected = vqvae.decode(quantized, force_not_quantize=True).sample
    torch.testing.assert_close(output.images, (expected * 0.5 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)
    pipeline.save_pretrained(tmp_path / "ldm")
    loaded = LatentDiffusionPipeline.from_pretrained(tmp_path / "ldm")
    assert isinstance(loaded.vae, VQModel)
    again = loaded(prompt="3", generator=seeded(0), num_inference_steps=2, output_type="pt").images
    torch.testing.assert_close(again, output.images, rtol=0, atol=1e-6)
    # what train_ldm.py diffuses: the scaled latents before quantisation
    images = torch.rand(2, 1, 16, 16, generator=seeded(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(encode_latents(vqvae, images), vqvae.encode(images).latents * 0.5)
    # train_ldm.py --vae_name_or_path takes a VQ-GAN folder (its vqvae/) as the first stage
    VQGANPipeline(vqvae=vqvae, prior=None).save_pretrained(tmp_path / "vqgan")
    train_ldm = import_script("train_ldm.py")
    first_stage = train_ldm.load_first_stage(str(tmp_path / "vqgan"), "--vae_name_or_path")
    assert isinstance(first_stage, VQModel) and train_ldm.first_stage_latent_channels(first_stage) == 4
    assert first_stage.config.scaling_factor == 0.5


def test_hfgen_sample_and_demo_serve_a_vqgan_folder(tmp_path):
    from PIL import Image

    from hfgen.cli import main
    from hfgen.demo import build_demo

    pipeline = TestVQGANPipeline().get_pipeline()
    pipeline.save_pretrained(tmp_path / "vqgan")
    # image i drawn from seed + i: the grid's first image is the pipeline's sample of seed 3
    assert (
        main(
            [
                "sample",
                str(tmp_path / "vqgan"),
                "--num_images",
                "2",
                "--seed",
                "3",
                "--output",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    grid = Image.open(tmp_path / "g.png")
    expected = pipeline(generator=[seeded(3)], output_type="pil").images[0]
    assert grid.size[1] == 16 and list(grid.crop((0, 0, 16, 16)).convert("L").getdata()) == list(expected.getdata())
    demo = build_demo(str(tmp_path / "vqgan"))
    labels = {block.label for block in demo.blocks.values() if getattr(block, "label", None)}
    assert {"temperature", "top_k", "samples", "reconstruction"} <= labels
    # a folder without a prior has only the reconstruction
    VQGANPipeline(vqvae=tiny_vqvae(), prior=None).save_pretrained(tmp_path / "no-prior")
    labels = {
        block.label
        for block in build_demo(str(tmp_path / "no-prior")).blocks.values()
        if getattr(block, "label", None)
    }
    assert "reconstruction" in labels and "samples" not in labels
