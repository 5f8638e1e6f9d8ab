"""Shared test classes for hfgen's models and pipelines, in the spirit of transformers' `ModelTesterMixin` and
diffusers' `PipelineTesterMixin`: every family's tests inherit them, and so can the tests of a new family."""
