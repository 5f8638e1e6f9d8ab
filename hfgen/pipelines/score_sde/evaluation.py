"""Measuring a score-SDE folder as train_ddpm.py --objective score_ve does, at the end of a run and on a saved folder
(`hfgen evaluate`): the code of `hfgen.pipelines.ddpm.evaluation`, which samples a ScoreSdePipeline's score network
with the predictor-corrector sampler on its noise ladder, with the score objective's default number of noise levels.
"""

from ..ddpm.evaluation import evaluate_folder

# Noise levels of predictor-corrector sampling in validation and the metrics unless --num_inference_steps says
# otherwise: more than DDIM's steps, at two network evaluations each.
SCORE_SAMPLING_STEPS = 100

# The settings of a score-SDE folder measured without its run's record (train_ddpm.py --objective score_ve's defaults).
EVALUATION_DEFAULTS = dict(num_inference_steps=SCORE_SAMPLING_STEPS)

__all__ = ["EVALUATION_DEFAULTS", "SCORE_SAMPLING_STEPS", "evaluate_folder"]
