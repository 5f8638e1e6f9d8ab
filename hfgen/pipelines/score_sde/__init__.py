from .pipeline_score_sde import ScoreSdePipeline

__all__ = ["ScoreSdePipeline"]
