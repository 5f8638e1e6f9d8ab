"""The Gradio demo of a StyleGAN folder (`hfgen demo <folder>`): samples by seed with truncation (and class, when
the generator is conditional), style mixing of two seeds, and the path between two seeds in W or Z."""

from ...demo import (
    class_names,
    enlarged,
    image_grid,
    import_gradio,
    interpolation_controls,
    sampling_controls,
    seed_latent,
)


def build_demo(pipeline):
    gr = import_gradio()
    generator = pipeline.stylegan
    config = generator.config
    classes = class_names(config)
    with gr.Blocks(title="StyleGAN", analytics_enabled=False) as demo:
        gr.Markdown(f"# StyleGAN samples\n\nA {config.resolution} px StyleGAN trained with hfgen.")
        with gr.Tab("Samples"):
            gr.Markdown("Truncation below 1 pulls the styles towards the mean style (more typical, less varied).")
            sampling_controls(pipeline, classes, truncation_psi=(0.0, 1.0, 1.0))
        with gr.Tab("Style mixing"):
            gr.Markdown(
                "The layers before the crossover take the styles of the first seed (coarse: shape, pose), the "
                "layers from it on those of the second (fine: stroke, texture)."
            )
            with gr.Row():
                coarse = gr.Number(value=0, precision=0, label="coarse seed", elem_id="coarse_seed")
                fine = gr.Number(value=1, precision=0, label="fine seed", elem_id="fine_seed")
                crossover = gr.Slider(
                    0,
                    generator.num_ws,
                    value=generator.num_ws // 2,
                    step=1,
                    label="crossover layer",
                    elem_id="crossover",
                )
            mixed = gr.Image(type="pil", format="png", label="coarse, fine, mixed", elem_id="mixed", interactive=False)

            def mix(coarse, fine, crossover):
                ends = [seed_latent(seed, config.latent_dim)[None] for seed in (coarse, fine)]
                labels = [0] if classes else None
                images = [
                    pipeline.style_mixing(layer, latents=ends[0], mixing_latents=ends[1], class_labels=labels).images[
                        0
                    ]
                    for layer in (generator.num_ws, 0, int(crossover))  # all coarse, all fine, the mix
                ]
                return enlarged(image_grid(images, columns=3), images[0].width)

            gr.Button("Mix", variant="primary", elem_id="mix").click(mix, [coarse, fine, crossover], mixed)
        with gr.Tab("Interpolate"):
            gr.Markdown(
                "A straight path in W (where the paper found the styles disentangled) or a spherical one in Z."
            )
            interpolation_controls(pipeline, config.latent_dim, classes, space=["w", "z"])
    return demo
