#!/usr/bin/env python
"""ControlNet and DreamBooth benchmarks on this machine; each part prints a Markdown table.

    # 1. training and sampling images/s of a ControlNet on a latent diffusion base, against the base alone:
    python benchmarks/bench_controlnet.py speed --base ldm-digits
    # 2. edge agreement of samples with their control maps, with the ControlNet and with the base alone:
    python benchmarks/bench_controlnet.py agreement --base ldm-digits --controlnet controlnet-digits
    # 3. DreamBooth LoRA fidelity to the subject and drift of the class, with and without prior preservation:
    python benchmarks/bench_controlnet.py dreambooth --base ldm-digits
    # 4. trained parameters and peak memory of DreamBooth LoRA against a full fine-tune of the same UNet:
    python benchmarks/bench_controlnet.py memory --base ldm-digits

Speeds are the median over `--repeats` timed rounds after a warm-up one, at the scripts' default batch (64) in fp32.
The agreement draws one sample per held-out digit (its Canny map, the prompt of its class, seeded noise), once with
the ControlNet and once with its scale at 0 (the base model, same prompt and noise). DreamBooth runs
`train_dreambooth_lora.py` twice on the same subject: five held-out sevens drawn bold (a grey dilation), a style the
base model never saw, as "a sks digit" of class "a handwritten digit". Memory is measured in a fresh process per mode
over three AdamW steps: on a GPU CUDA's peak allocation; on a CPU the peak bytes of tensors alive at once (weights,
gradients, optimizer state, activations and temporaries, counted per storage as torch creates and frees them: the
same quantity), with the peak resident size over the process's starting size beside it, which also holds the
allocator's caches and kernel scratch space.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "training_scripts", "diffusion")


def load_base(base: str):
    import hfgen

    pipeline = hfgen.LatentDiffusionPipeline.from_pretrained(base)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def digit_batch(count: int, split: str = "train", resolution: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    from hfgen.data import images_as_tensor, load_digits_dataset

    data = load_digits_dataset(resolution)[split]
    images = images_as_tensor(data.select(range(count)), resolution, "L")
    return images, torch.tensor(data.select(range(count))["label"])


def timed(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- 1. speed ---


def speed(args) -> None:
    from diffusers import DDPMScheduler

    from hfgen.data.captions import LabelCaptions
    from hfgen.data.control import control_maps
    from hfgen.training.diffusion import encode_latents, encode_text, noised_latents

    sys.path.insert(0, SCRIPTS)
    from train_controlnet import new_controlnet

    base = load_base(args.base)
    controlnet = new_controlnet(base.unet, base.image_size[0] // base.unet.config.sample_size)
    noise_scheduler = DDPMScheduler.from_config(base.scheduler.config)
    images, labels = digit_batch(args.batch_size)
    texts = LabelCaptions([str(d) for d in range(10)]).captions(labels)
    base.unet.requires_grad_(False)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=1e-4)
    unet_optimizer = torch.optim.AdamW(base.unet.parameters(), lr=1e-4)

    def step(with_controlnet: bool):
        control = control_maps(images, "canny")
        latents = encode_latents(base.vae, images)
        with torch.no_grad():
            hidden = encode_text(base.text_encoder, base.tokenizer, texts, latents.device)
        noise, timesteps, noisy = noised_latents(latents, noise_scheduler, 0.0)
        residuals = {}
        if with_controlnet:
            down, middle = controlnet(noisy, timesteps, hidden, controlnet_cond=control, return_dict=False)
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": middle}
        prediction = base.unet(noisy, timesteps, encoder_hidden_states=hidden, **residuals).sample
        loss = torch.nn.functional.mse_loss(prediction, noise)
        loss.backward()
        (optimizer if with_controlnet else unet_optimizer).step()
        optimizer.zero_grad()
        unet_optimizer.zero_grad()

    rows = []
    control_time = timed(lambda: step(True), args.repeats)
    base.unet.requires_grad_(True)
    base_time = timed(lambda: step(False), args.repeats)
    rows.append(("training, ControlNet (base frozen)", args.batch_size / control_time))
    rows.append(("training, the base UNet itself (for scale)", args.batch_size / base_time))

    import hfgen

    pipeline = hfgen.LatentDiffusionControlNetPipeline(**base.components, controlnet=controlnet.eval())
    pipeline.set_progress_bar_config(disable=True)
    control = control_maps(images[: args.sample_batch], "canny")
    prompts = texts[: args.sample_batch]

    def sample(scale: float):
        pipeline(prompts, image=control, controlnet_conditioning_scale=scale, num_inference_steps=25)

    rows.append(
        ("sampling 25 DDIM steps, guidance 3, with the ControlNet", args.sample_batch / timed(lambda: sample(1.0), 1))
    )
    rows.append(
        ("sampling, the base alone (scale 0 skips the ControlNet)", args.sample_batch / timed(lambda: sample(0.0), 1))
    )
    print(
        f"\nControlNet speed on {args.base} ({torch.get_num_threads()} threads, batch {args.batch_size} for training, "
        f"{args.sample_batch} for sampling)\n"
    )
    print("| What | images/s |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} |")


# --- 2. agreement ---


@torch.no_grad()
def agreement(args) -> None:
    from diffusers import ControlNetModel
    from diffusers.utils.torch_utils import randn_tensor

    import hfgen
    from hfgen.data.captions import LabelCaptions
    from hfgen.data.control import control_maps
    from hfgen.metrics.control import control_agreement

    base = load_base(args.base)
    pipeline = hfgen.LatentDiffusionControlNetPipeline(
        **base.components, controlnet=ControlNetModel.from_pretrained(args.controlnet)
    )
    pipeline.set_progress_bar_config(disable=True)
    images, labels = digit_batch(args.num_images, split="test")
    captions = LabelCaptions([str(d) for d in range(10)])
    results = {scale: [] for scale in (args.scale, 0.0)}
    for start in range(0, args.num_images, 64):
        batch, batch_labels = images[start : start + 64], labels[start : start + 64]
        control = control_maps(batch, "canny")
        prompts = [captions.prompt(int(label)) for label in batch_labels]
        latents = randn_tensor((len(prompts), *pipeline._latent_shape), generator=torch.Generator().manual_seed(start))
        for scale in results:
            samples = pipeline(
                prompts, image=control, latents=latents, controlnet_conditioning_scale=scale, output_type="pt"
            ).images
            results[scale].append(control_agreement(control, samples * 2 - 1, "canny", tolerance=args.tolerance))
    print(
        f"\nEdge agreement on {args.num_images} held-out digits (Canny, {args.tolerance} px tolerance), "
        f"25 DDIM steps, guidance 3\n"
    )
    print("| Model | edge F1 (mean) | share of samples with F1 > 0.8 |\n|---|---|---|")
    for scale, name in ((args.scale, f"with the ControlNet (scale {args.scale})"), (0.0, "the base model alone")):
        scores = torch.cat(results[scale])
        print(f"| {name} | {scores.mean():.3f} | {(scores > 0.8).float().mean():.1%} |")


# --- 3. DreamBooth ---


def write_subject(folder: str) -> None:
    """Five held-out sevens drawn bold: a grey dilation of the strokes, a style the base model never saw."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    from hfgen.data import load_digits_dataset

    test = load_digits_dataset(32)["test"]
    sevens = [index for index, label in enumerate(test["label"]) if label == 7][:5]
    os.makedirs(folder, exist_ok=True)
    for count, index in enumerate(sevens):
        image = np.asarray(test[index]["image"].convert("L"))
        bold = ndimage.grey_dilation(image, size=(3, 3))
        Image.fromarray(bold).save(os.path.join(folder, f"{count}.png"))


def dreambooth(args) -> None:
    work = args.work_dir or tempfile.mkdtemp(prefix="bench-dreambooth-")
    subject = os.path.join(work, "bold_sevens")
    write_subject(subject)
    results = {}
    for prior in (True, False):
        output_dir = os.path.join(work, "prior" if prior else "no-prior")
        command = [
            sys.executable,
            os.path.join(SCRIPTS, "train_dreambooth_lora.py"),
            "--pretrained_model_name_or_path",
            args.base,
            "--instance_data_dir",
            subject,
            "--instance_prompt",
            "a sks digit",
            "--class_prompt",
            "a handwritten digit",
            "--metrics_model",
            "hfgen/digits",
            "--output_dir",
            output_dir,
            "--report_to",
            "none",
            "--validation_steps",
            "100000",
            *(["--with_prior_preservation"] if prior else []),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        with open(os.path.join(output_dir, "metrics.json")) as file:
            results[prior] = (json.load(file), time.perf_counter() - start)
    print(
        f"\nDreamBooth LoRA on {args.base}: 5 bold sevens as 'a sks digit', class 'a handwritten digit', "
        "features of hfgen's digits classifier\n"
    )
    print("| Run | subject fidelity (base before training) | class drift | trained parameters | wall time |")
    print("|---|---|---|---|---|")
    for prior, name in ((True, "with prior preservation"), (False, "without prior preservation")):
        record, seconds = results[prior]
        metrics = record["metrics"]
        print(
            f"| {name} | {metrics['instance_fidelity']:.3f} ({metrics['instance_fidelity_base']:.3f}) | "
            f"{metrics.get('class_drift', float('nan')):.4f} | {record['protocol']['trained_parameters']} | "
            f"{seconds / 60:.1f} min |"
        )
    print(f"\nfolders: {work}")


# --- 4. memory ---


def resident_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class LiveTensorBytes:
    """The peak bytes of tensor storages alive at once, counted as torch operations create them and as they are freed:
    on a CPU the analogue of CUDA's `max_memory_allocated` (the process's resident size also holds the allocator's
    caches and the kernels' scratch space, which depend on the allocator, not on the training)."""

    def __init__(self, existing):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self
        self.live = self.peak = 0
        # storages that exist before (weights, inputs): views of them are not new memory
        self.seen = {tensor.untyped_storage().data_ptr() for tensor in existing}

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                output = func(*args, **(kwargs or {}))
                for tensor in tree_flatten(output)[0]:
                    if isinstance(tensor, torch.Tensor):
                        tracker.track(tensor)
                return output

        self.mode = Mode()

    def track(self, tensor: torch.Tensor) -> None:
        import weakref

        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if key in self.seen or size == 0:
            return
        self.seen.add(key)
        self.live += size
        self.peak = max(self.peak, self.live)

        def free():
            self.seen.discard(key)
            self.live -= size

        weakref.finalize(storage, free)


def memory_worker(args) -> None:
    """One mode in this fresh process: print the trained parameters and the peak memory of three training steps,
    weights included (CUDA's peak allocation on a GPU; on a CPU the peak of live tensors, and the resident size over
    the process's size before the UNet was built)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from hfgen.training.diffusion import add_unet_lora

    if args.stable_diffusion_unet:
        # diffusers' default UNet2DConditionModel is Stable Diffusion 1.x's (860 M parameters), here at
        # --latent_size (32: 256 px images)
        config = {**dict(UNet2DConditionModel().config), "sample_size": args.latent_size}
    else:
        config = UNet2DConditionModel.load_config(args.base, subfolder="unet")
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    start = torch.cuda.memory_allocated() if cuda else resident_bytes()
    unet = UNet2DConditionModel.from_config(config).to(device)
    if args.mode == "lora":
        add_unet_lora(unet, rank=4)
    parameters = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    scheduler = DDPMScheduler()
    size = config["sample_size"]
    latents = torch.randn(args.batch_size, config["in_channels"], size, size, device=device)
    tokens = 77 if args.stable_diffusion_unet else 16  # a CLIP tokenizer pads to 77
    hidden = torch.randn(args.batch_size, tokens, config["cross_attention_dim"], device=device)
    weights = sum(tensor.numel() * tensor.element_size() for tensor in unet.state_dict().values())
    tracker = LiveTensorBytes([*unet.parameters(), *unet.buffers(), latents, hidden])
    with tracker.mode:
        for _ in range(3):
            timesteps = torch.randint(0, 1000, (args.batch_size,), device=device)
            noise = torch.randn_like(latents)
            prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, hidden).sample
            torch.nn.functional.mse_loss(prediction, noise).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            del prediction
    if cuda:
        peak = torch.cuda.max_memory_allocated() - start
        resident = None
    else:
        peak = weights + tracker.peak
        resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start
    trained = sum(p.numel() for p in parameters)
    total = sum(p.numel() for name, p in unet.named_parameters() if "lora_" not in name)
    result = {"trained": trained, "total": total, "peak_bytes": peak, "resident_bytes": resident, "device": device}
    print(json.dumps(result))


def memory(args) -> None:
    results = {}
    for mode in ("full", "lora"):
        command = [sys.executable, __file__, "memory_worker", "--base", args.base, "--mode", mode]
        command += ["--batch_size", str(args.batch_size), "--latent_size", str(args.latent_size)]
        command += ["--stable_diffusion_unet"] if args.stable_diffusion_unet else []
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    full, lora = results["full"], results["lora"]
    unet = f"the UNet of {args.base}"
    if args.stable_diffusion_unet:
        unet = f"Stable Diffusion 1.x's UNet at {args.latent_size}x{args.latent_size} latents"
    print(
        f"\nDreamBooth LoRA (rank 4 on to_q/to_k/to_v/to_out.0) against a full fine-tune of {unet}, "
        f"batch {args.batch_size}, AdamW, on {full['device']}\n"
    )
    print("| Mode | trained parameters | share of the UNet | peak tensor memory | peak resident size |")
    print("|---|---|---|---|---|")
    for name, result in (("full fine-tune", full), ("LoRA", lora)):
        resident = "-" if result["resident_bytes"] is None else f"{result['resident_bytes'] / 2**20:.1f} MiB"
        print(
            f"| {name} | {result['trained']:,} | {result['trained'] / result['total']:.2%} | "
            f"{result['peak_bytes'] / 2**20:.1f} MiB | {resident} |"
        )
    print(f"\nLoRA peak / full peak: {lora['peak_bytes'] / full['peak_bytes']:.1%} of tensor memory")
    if full["resident_bytes"]:
        print(f"(resident size: {lora['resident_bytes'] / full['resident_bytes']:.1%})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "agreement", "dreambooth", "memory", "memory_worker"])
    parser.add_argument("--base", required=True, help="A latent diffusion folder (train_ldm.py's output).")
    parser.add_argument("--controlnet", help="A ControlNet folder (train_controlnet.py's output), for agreement.")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--sample_batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num_images", type=int, default=256)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tolerance", type=int, default=1)
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--mode", choices=["full", "lora"], default="lora")
    parser.add_argument(
        "--stable_diffusion_unet",
        action="store_true",
        help="memory: measure on Stable Diffusion 1.x's UNet architecture (random weights) instead of the base's.",
    )
    parser.add_argument(
        "--latent_size", type=int, default=32, help="memory: latent side with --stable_diffusion_unet."
    )
    args = parser.parse_args()
    {
        "speed": speed,
        "agreement": agreement,
        "dreambooth": dreambooth,
        "memory": memory,
        "memory_worker": memory_worker,
    }[args.part](args)


if __name__ == "__main__":
    main()
