"""Shared test classes for hfgen's models and pipelines, in the spirit of transformers' `ModelTesterMixin` and
diffusers' `PipelineTesterMixin`: every family's tests inherit them, and so can the tests of a new family."""

from .model_tester import ModelTesterMixin, all_hfgen_classes, cast_inputs, output_tensors
from .pipeline_tester import ClassLabelsPipelineTesterMixin, PipelineTesterMixin

__all__ = [
    "ClassLabelsPipelineTesterMixin",
    "ModelTesterMixin",
    "PipelineTesterMixin",
    "all_hfgen_classes",
    "cast_inputs",
    "output_tensors",
]
