"""The Gradio demos of BLIP folders (`hfgen demo <folder>`): a captioner (train_blip_captioning.py) captions an
uploaded image by beam search; a question answerer (train_blip_vqa.py) answers a question typed about it. Both
generate as the scripts' evaluation does, so the demo shows what the card's metrics measured."""

import torch
from transformers import BlipForConditionalGeneration, BlipForQuestionAnswering, BlipProcessor

from ...demo import import_gradio
from ..modeling_utils import load_model_folder
from .evaluation import ANSWER_MAX_NEW_TOKENS, CAPTION_MAX_NEW_TOKENS, NUM_BEAMS


@torch.no_grad()
def caption(model, processor, image, num_beams: int, max_new_tokens: int) -> str:
    pixel_values = processor(images=image.convert("RGB"), return_tensors="pt").pixel_values.to(model.device)
    ids = model.generate(pixel_values=pixel_values, num_beams=num_beams, max_new_tokens=max_new_tokens)
    return processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()


@torch.no_grad()
def answer(model, processor, image, question: str, num_beams: int, max_new_tokens: int) -> str:
    # one question, unpadded: the answer decoder attends to every question token (see evaluation.generate_answers)
    tokenizer = processor.tokenizer
    input_ids = tokenizer(question, truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt")
    pixel_values = processor(images=image.convert("RGB"), return_tensors="pt").pixel_values.to(model.device)
    ids = model.generate(
        input_ids=input_ids.input_ids.to(model.device),
        pixel_values=pixel_values,
        num_beams=num_beams,
        max_new_tokens=max_new_tokens,
    )
    return tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def build_demo(folder: str, architecture: str):
    gr = import_gradio()
    answers_questions = architecture == "BlipForQuestionAnswering"
    model_class = BlipForQuestionAnswering if answers_questions else BlipForConditionalGeneration
    model = load_model_folder(folder, model_class).eval()
    processor = BlipProcessor.from_pretrained(folder)
    # the decoder reads its start token and the new ones within its text positions
    most_tokens = model.config.text_config.max_position_embeddings - 1
    title = "Visual question answering with BLIP" if answers_questions else "Image captioning with BLIP"
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n\nBeam search, as the training script's evaluation generates.")
        with gr.Row():
            image = gr.Image(type="pil", label="image", elem_id="blip_input")
            with gr.Column():
                inputs = [image]
                if answers_questions:
                    inputs.append(gr.Textbox(label="question", elem_id="question"))
                beams = gr.Slider(1, 8, value=NUM_BEAMS, step=1, label="beams", elem_id="num_beams")
                length = gr.Slider(
                    1,
                    most_tokens,
                    value=min(ANSWER_MAX_NEW_TOKENS if answers_questions else CAPTION_MAX_NEW_TOKENS, most_tokens),
                    step=1,
                    label="most new tokens",
                    elem_id="max_new_tokens",
                )
                output = gr.Textbox(label="answer" if answers_questions else "caption", elem_id="generated")

        def run(image, *values):
            *question, beams, length = values
            if image is None:
                raise gr.Error("upload an image")
            if answers_questions:
                if not question[0].strip():
                    raise gr.Error("type a question about the image")
                return answer(model, processor, image, question[0].strip(), int(beams), int(length))
            return caption(model, processor, image, int(beams), int(length))

        button = "Answer" if answers_questions else "Caption"
        gr.Button(button, variant="primary", elem_id="generate").click(run, [*inputs, beams, length], output)
    return demo
