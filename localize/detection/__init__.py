"""Detection on the PET: reference regions, physiological uptake, lesion segmentation, metrics.

``reference`` (liver, blood pool, parotid, spleen and marrow SUVs), ``physiology``
(organ uptake that hides lesion candidates, per tracer), ``segment`` (hot spots ->
lesions, with the rejected candidates kept for audit) and ``metrics`` (SUVmax,
SUVpeak, volume and target point of each lesion, LPS mm).
"""
