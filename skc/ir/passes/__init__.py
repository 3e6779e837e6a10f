"""IR passes: simplify (folding, identities, constant control flow), dce, and the pipeline that runs them."""
from .dce import dce
from .pipeline import DEFAULT_PIPELINE, PASSES, run_pipeline
from .simplify import simplify

__all__ = ["DEFAULT_PIPELINE", "PASSES", "dce", "run_pipeline", "simplify"]
