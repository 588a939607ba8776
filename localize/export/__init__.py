"""Writing results: RTSTRUCT, DICOM SEG, NIfTI and label map, report, lesion table, summaries.

Every file is written atomically (``localize.atomic``). ``convert`` turns whole
series into NIfTI; ``privacy`` pseudonymises what the exports carry.
"""
