"""The Gradio demo of a score-SDE folder (`hfgen demo <folder>`): a grid of samples by seed and the number of
predictor-corrector steps."""

from ...demo import generator_demo


def build_demo(pipeline):
    return generator_demo(
        pipeline,
        title="Score SDE samples",
        description="Drawn by reversing the variance-exploding SDE with the score model trained with hfgen.",
        num_inference_steps=(10, 2000, 500),
    )
