"""Lesion classification and study staging, in the contract's vocabulary.

See docs/classification.md and, for the scores, docs/detection.md#mipsma-expression-score.

``classify_lesions`` labels each lesion local / nodal / distant with its site,
PROMISE category, laterality and named bone; ``expression_scores`` sets the
miPSMA score or the fluciclovine suspicion; ``stage`` gives the study's miTNM
string for findings.json.
"""

from localize.classify.scores import expression_scores, mipsma_score
from localize.classify.sites import Classification, classify_lesions, infer_status
from localize.classify.staging import stage

__all__ = ["Classification", "classify_lesions", "expression_scores", "infer_status", "mipsma_score", "stage"]
