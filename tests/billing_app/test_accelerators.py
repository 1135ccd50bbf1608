"""Which instance types a course's limit on GPU and accelerator instances counts (billing_app/accelerators.py)."""

import pytest

from billing_app.accelerators import is_accelerated

ACCELERATED = [
    # EC2: p (training GPUs), g (graphics and inference GPUs), inf (Inferentia), trn (Trainium),
    # dl (Gaudi), f (FPGAs), vt (video transcoding).
    "p3.2xlarge",
    "p4d.24xlarge",
    "p5.48xlarge",
    "g4dn.xlarge",
    "g4ad.xlarge",
    "g5.xlarge",
    "g5g.xlarge",
    "g6e.xlarge",
    "gr6.4xlarge",
    "inf1.xlarge",
    "inf2.xlarge",
    "trn1.2xlarge",
    "trn2.48xlarge",
    "dl1.24xlarge",
    "dl2q.24xlarge",
    "f1.2xlarge",
    "f2.6xlarge",
    "vt1.3xlarge",
    "G5.XLARGE",  # as typed by a person
    # SageMaker: ml.p, ml.g, ml.inf, ml.trn.
    "ml.p3.2xlarge",
    "ml.g4dn.xlarge",
    "ml.g5.2xlarge",
    "ml.inf2.xlarge",
    "ml.trn1.2xlarge",
]
NOT_ACCELERATED = [
    "t3.micro",
    "t4g.small",
    "m5.large",
    "c5.xlarge",
    "r6i.large",
    "i3.large",  # i, not inf
    "im4gn.large",
    "d3.xlarge",  # d, not dl
    "x2gd.medium",
    "mac1.metal",
    "hpc6a.48xlarge",
    "u-6tb1.metal",
    "ml.t3.medium",
    "ml.m5.xlarge",
    "ml.c5.large",
    "ml.geospatial.interactive",  # starts with g, but no family generation: not a GPU family
    "ml.f1.2xlarge",  # not a SageMaker accelerator family (SageMaker counts p, g, inf and trn)
    "db.t3.micro",
    "",
]


@pytest.mark.parametrize("instance_type", ACCELERATED)
def test_gpu_and_accelerator_families_are_counted(instance_type):
    assert is_accelerated(instance_type)


@pytest.mark.parametrize("instance_type", NOT_ACCELERATED)
def test_other_families_are_not(instance_type):
    assert not is_accelerated(instance_type)
