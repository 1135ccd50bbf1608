"""Which instance types carry a GPU or another accelerator: what a course may cap per student
(billing_app/services/limits.py). Pure: names in, yes or no out.

EC2 families p (NVIDIA training), g (graphics and inference GPUs, gr6 included), inf (Inferentia),
trn (Trainium), dl (Gaudi), f (FPGAs), vt (video transcoding); SageMaker's ml.p, ml.g, ml.inf and
ml.trn. A family name is its letters then a generation digit, so that a SageMaker type such as
ml.geospatial.interactive, or a future family that merely starts with one of those letters and
has no generation, is not taken for one.
"""

from __future__ import annotations

import re

EC2_ACCELERATED = re.compile(r"(p|g|inf|trn|dl|f|vt)[a-z]*\d")
SAGEMAKER_ACCELERATED = re.compile(r"ml\.(p|g|inf|trn)[a-z]*\d")


def is_accelerated(instance_type: str) -> bool:
    """Whether an EC2 (`g5.xlarge`) or SageMaker (`ml.p3.2xlarge`) instance type is a GPU or
    accelerator instance."""
    name = instance_type.strip().lower()
    if name.startswith("ml."):
        return SAGEMAKER_ACCELERATED.match(name) is not None
    return EC2_ACCELERATED.match(name) is not None
